"""Apple's side of a shop: the simulator posts real signed notifications over HTTP to the service
running under uvicorn on a loopback port, and the test runs the worker with `drain()`.

The served app and the test's in-process app share the database, the settings and the clock, so a
job the served app enqueues is due for the test's worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest

from app.clock import MovableClock
from app.config import Settings
from app.jobs.worker import Worker
from app.main import create_app
from app.simulator.server import BackgroundServer
from tests.helpers import db
from tests.helpers.api import ADMIN
from tests.helpers.shop import MONTHLY_OFFER, Shop, open_shop


@pytest.fixture
async def served(settings: Settings, clock: MovableClock) -> AsyncIterator[BackgroundServer]:
    """The service itself, served over real HTTP: where Apple (the simulator) posts."""
    server = BackgroundServer(create_app(settings, clock=clock))
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


def expires(subscription: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(subscription["expiresAt"]).timestamp())


def topics(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [topic for topic, _ in events]


@dataclass
class Apple:
    """The shop's app in the simulator, notifying the served service; and what came of it."""

    shop: Shop
    worker: Worker
    base_url: str

    def url(self, publisher_id: int | None = None) -> str:
        publisher = self.shop.publisher.id if publisher_id is None else publisher_id
        return f"{self.base_url}/apple/notifications/{publisher}"

    async def notify_to(self, url: str | None, bundle_id: str | None = None) -> None:
        path = f"/sim/apps/{bundle_id or self.shop.bundle_id}/notification-url"
        answer = await self.shop.sim.put(path, json={"url": url})
        assert answer.status_code == 200, answer.text

    async def act(
        self, transaction_id: str, action: str, expect: int | None = 200, **body: Any
    ) -> dict[str, Any]:
        """A lifecycle action in the simulator; it posts its notification before answering."""
        path = f"/sim/purchases/{transaction_id}/{action}"
        answer = await self.shop.sim.post(path, json={"notify": True, **body})
        assert answer.status_code == 200, answer.text
        done = dict(answer.json())
        assert done["notification"]["statusCode"] == expect, done["notification"]
        return done

    async def subscribed(
        self, kind: str = "auto-renewable", name: str = "monthly"
    ) -> tuple[dict[str, Any], int]:
        """A purchase registered and synchronized for the shop's first customer."""
        bought = await self.shop.purchase(kind, name)
        customer = self.shop.customers[0]
        await self.shop.accepted(customer, bought["transactionId"])
        assert await self.worker.drain() == 1
        return bought, customer

    async def resend(self, notification_uuid: str) -> dict[str, Any]:
        answer = await self.shop.sim.post(f"/sim/notifications/{notification_uuid}/resend")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def notifications(self, **params: Any) -> list[dict[str, Any]]:
        url = f"/admin/publishers/{self.shop.publisher.id}/notifications"
        answer = await self.shop.client.get(url, params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The webhook events notifications caused (a sync's carry its synchronizationId)."""
        return await db.events(self.shop.context.db, self.shop.publisher.id, None)

    async def subscription(self, customer: int) -> dict[str, Any]:
        """The customer's one subscription of the monthly offer that is not terminated, or the
        last one."""
        items = (await self.shop.subscriptions(customerId=customer))["items"]
        current = [s for s in items if s["status"] != "terminated"] or items
        return dict(current[-1])

    async def access(self, customer: int, offer_id: str = MONTHLY_OFFER) -> dict[str, Any]:
        return await self.shop.entitlement(customer, offer_id)

    async def stored(self) -> int:
        """How many notifications the publisher has stored."""
        return await self.scalar(
            "SELECT count(*) FROM apple_notifications WHERE publisher_id = $1",
            self.shop.publisher.id,
        )

    async def jobs(self) -> int:
        return await self.scalar("SELECT count(*) FROM jobs")

    async def scalar(self, sql: str, *args: Any) -> int:
        return await db.count(self.shop.context.db, sql, *args)


@pytest.fixture
async def apple(shop: Shop, worker: Worker, served: BackgroundServer) -> Apple:
    store = Apple(shop, worker, served.base_url)
    await store.notify_to(store.url())
    return store


@pytest.fixture
async def other_shop(client: httpx.AsyncClient, sim: httpx.AsyncClient, shop: Shop) -> Shop:
    """A second publisher with an app of its own in the simulator."""
    return await open_shop(client, sim, shop.context)


DEADLINE_SECONDS = 5.0


def signed_date(record: dict[str, Any]) -> int:
    claims = jwt.decode(record["signedPayload"], options={"verify_signature": False})
    return int(claims["signedDate"])


async def wall_clock_past(milliseconds: int) -> None:
    """Wait (with a deadline) until the simulator's clock, the wall clock, is past a signedDate."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.time() * 1000 <= milliseconds:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
