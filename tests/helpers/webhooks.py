"""The webhooks seen from a test: a database of their own, a real receiver, events written as the
service writes them, and the delivery jobs run on demand (`drain`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.context import Context
from app.db import with_database
from app.enums import Topic
from app.migrate import migrate
from app.runtime import make_worker
from app.subscriptions.events import Event
from app.webhooks import outbox
from tests.helpers.api import PublisherRef, make_settings
from tests.helpers.db import create_database, drop_database
from tests.helpers.receiver import Receiver

SCHEDULE = (5.0, 300.0, 1800.0)
TOPIC = "inappPurchaseSyncResult"


@pytest.fixture(scope="session")
def webhooks_database_url(server_url: str) -> Iterator[str]:
    """The webhooks tests move the clock by hours and run every due job: a database of their own
    keeps them from running (or being run by) other tests' jobs."""
    name = f"sks_webhooks_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(drop_database(server_url, name))


def webhook_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allow_private_networks": True,
        "webhook_retry_schedule": SCHEDULE,
        "run_worker": False,
    }
    return make_settings(database_url, data_dir, **(values | overrides))


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def context_of(app: FastAPI) -> Context:
    return cast(Context, app.state.context)


async def drain(app: FastAPI) -> int:
    """Run every job due at the injected clock's now, as a worker would."""
    return await make_worker(context_of(app)).drain()


async def emit_event(
    app: FastAPI, publisher_id: int, topic: str = TOPIC, data: dict[str, Any] | None = None
) -> None:
    """Write one event as the service does, its deliveries any worker's."""
    context = context_of(app)
    body = data if data is not None else {"synchronizationId": secrets.token_hex(8)}
    async with context.db.transaction() as tx:
        await outbox.write(tx, publisher_id, [Event(Topic(topic), body)], context.clock.now())


async def subscribe(
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    names: list[str],
    *,
    host: str = "127.0.0.1",
    also: Sequence[tuple[Receiver, str]] = (),
) -> None:
    """Subscribe the receivers' endpoints `names` (and `also`) to TOPIC with generated secrets,
    and teach each receiver its secret (shown once, in the PUT answer)."""
    pairs = [(receiver, name) for name in names] + list(also)
    body = [{"url": where.url(name, host)} for where, name in pairs]
    answer = await client.put(
        f"/3.1/webhook_subscriptions/{TOPIC}", json=body, headers=publisher.headers
    )
    assert answer.status_code == 200, answer.text
    for (where, name), shown in zip(pairs, answer.json(), strict=True):
        where[name].secret = shown["verification"]["options"]["sharedSecret"]


async def deliveries(app: FastAPI, publisher_id: int) -> list[SimpleNamespace]:
    """The publisher's deliveries as stored, oldest first (attributes named as the columns)."""
    rows = await context_of(app).db.fetch(
        "SELECT * FROM webhook_deliveries WHERE publisher_id = $1 ORDER BY id", publisher_id
    )
    return [SimpleNamespace(**dict(row)) for row in rows]


async def job_run_at(app: FastAPI, delivery_id: int) -> list[datetime]:
    """When the delivery's jobs run next (none once it is settled)."""
    rows = await context_of(app).db.fetch(
        "SELECT run_at FROM jobs WHERE payload->>'deliveryId' = $1 ORDER BY run_at",
        str(delivery_id),
    )
    return [row["run_at"] for row in rows]
