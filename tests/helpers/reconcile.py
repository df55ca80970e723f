"""The reconciliation from a test: its job made due, the clock past the wall clock (the
simulator signs with the wall clock; a pass reads Apple's history up to the service's now), the
worker drained; what its passes recorded; and the simulator's side of a missed notification."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.clock import MovableClock
from app.db import Executor, with_database
from app.enums import JobKind
from app.jobs import queue
from app.jobs.worker import Worker
from app.migrate import migrate
from tests.helpers.db import create_database, drop_database


@pytest.fixture(scope="session")
def reconcile_database_url(server_url: str) -> Iterator[str]:
    """A pass reads every app of every publisher in its database: the reconciliation tests keep
    theirs apart from the other tests' hundreds of publishers."""
    name = f"sks_reconcile_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(drop_database(server_url, name))


def catch_up(clock: MovableClock, seconds: float = 1.0) -> None:
    """Move the service's clock `seconds` past the wall clock."""
    behind = time.time() - clock.now().timestamp()
    clock.advance(max(behind, 0.0) + seconds)


async def due(db: Executor, clock: MovableClock) -> None:
    """The reconciliation's job is due now (as at a process's start)."""
    await queue.ensure_periodic(db, JobKind.RECONCILE, clock.now())


async def run_pass(db: Executor, worker: Worker, clock: MovableClock) -> dict[str, Any]:
    """One pass, and every job it made (the notifications it recovered are applied, their
    webhooks sent); the pass's record."""
    catch_up(clock)
    await due(db, clock)
    await worker.drain()
    return await last_pass(db)


async def last_pass(db: Executor) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM reconcile_passes ORDER BY id DESC LIMIT 1")
    assert row is not None, "no pass ran"
    return dict(row)


async def passes(db: Executor) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT * FROM reconcile_passes ORDER BY id")]


async def reconcile_job(db: Executor) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM jobs WHERE singleton = $1", JobKind.RECONCILE.value)
    assert row is not None, "no reconcile job"
    return dict(row)


async def cursor(db: Executor, publisher_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT * FROM notification_history_cursors WHERE publisher_id = $1", publisher_id
    )
    return None if row is None else dict(row)
