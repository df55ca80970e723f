"""Fixtures for the webhooks: a database of their own, the app without its background worker,
a real receiver on loopback, and helpers that emit events and run the delivery jobs.

The webhooks tests move the injected clock by hours and run every due job; a database of their
own keeps them from running (or being run by) other tests' jobs. Deliveries run only when a test
calls `drain`, never in the background.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.db import unit_of_work, with_database
from app.jobs.worker import Handler, Worker
from app.main import create_app
from app.migrate import migrate
from app.webhooks.delivery import deliver_job
from app.webhooks.events import emit
from app.webhooks.models import WebhookDelivery
from tests.conftest import PublisherRef, _create_database, _drop_database, make_settings
from tests.webhooks.receiver import Receiver

SCHEDULE = (5.0, 300.0, 1800.0)
TOPIC = "inappPurchaseSyncResult"


@pytest.fixture(scope="session")
def webhooks_database_url(server_url: str) -> Iterator[str]:
    name = f"sks_webhooks_{secrets.token_hex(4)}"
    asyncio.run(_create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(_drop_database(server_url, name))


@pytest.fixture(autouse=True)
async def _no_jobs_left(webhooks_database_url: str) -> None:
    """Each test starts with an empty queue: what earlier tests left must not run in its drains."""
    connection = await asyncpg.connect(webhooks_database_url)
    try:
        await connection.execute("DELETE FROM jobs")
    finally:
        await connection.close()


def webhook_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allow_private_networks": True,
        "webhook_retry_schedule": SCHEDULE,
        "run_worker": False,
    }
    return make_settings(database_url, data_dir, **(values | overrides))


@pytest.fixture
def settings(webhooks_database_url: str, data_dir: Path) -> Settings:
    """Overrides the root `settings`, so the root `app`, `client` and `publisher` use it."""
    return webhook_settings(webhooks_database_url, data_dir)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@asynccontextmanager
async def running(
    settings: Settings, clock: MovableClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with other settings than the fixture's, and a client for it."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            yield application, http


def context_of(app: FastAPI) -> Context:
    context: Context = app.state.context
    return context


def handlers() -> dict[str, Handler]:
    """The service's own job table; only the delivery job when the rest cannot load yet."""
    try:
        from app.jobs.handlers import job_handlers

        return job_handlers()
    except ImportError:
        return {"webhook_delivery": deliver_job}


async def drain(app: FastAPI) -> int:
    """Run every job due at the injected clock's now, as a worker would."""
    return await Worker(context_of(app), handlers()).drain()


async def emit_event(
    app: FastAPI, publisher_id: int, topic: str = TOPIC, data: dict[str, Any] | None = None
) -> int:
    context = context_of(app)
    async with unit_of_work(context.sessions) as session:
        body = data if data is not None else {"synchronizationId": secrets.token_hex(8)}
        return await emit(session, publisher_id, topic, body, context.clock.now())


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


async def deliveries(app: FastAPI, publisher_id: int) -> list[WebhookDelivery]:
    async with context_of(app).sessions() as session:
        statement = select(WebhookDelivery).where(WebhookDelivery.publisher_id == publisher_id)
        return list(await session.scalars(statement.order_by(WebhookDelivery.id)))


async def job_run_at(app: FastAPI, delivery_id: int) -> list[Any]:
    """When the delivery's jobs run next (none once it is settled)."""
    query = text("SELECT run_at FROM jobs WHERE payload->>'deliveryId' = :id ORDER BY run_at")
    async with context_of(app).sessions() as session:
        return list(await session.scalars(query, {"id": str(delivery_id)}))
