"""A shop: a publisher wired to an app in the App Store simulator, over real HTTP, with offers and
customers; and the fixtures that make one. The service trusts only the simulator's root
certificate, exactly as it trusts Apple's. Test folders that sync purchases take `shop_settings`
as their `settings`."""

from __future__ import annotations

import random
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.context import Context
from app.jobs.worker import Worker
from app.runtime import make_worker
from app.simulator.server import SimulatorServer
from tests.helpers import db
from tests.helpers.api import ADMIN, PublisherRef, make_settings, new_customer, new_publisher

MONTHLY_OFFER, LIFETIME_OFFER, PASS_OFFER = "S123456789_US", "P223456789_US", "P323456789_US"


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture(scope="session")
def root_path(simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roots") / "simulator-root.der"
    path.write_bytes(simulator.root_der)
    return path


def sync_settings(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root: Path, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "apple_root_certificates": (root,),
        "apple_api_base_url": simulator.base_url,
        "run_worker": False,
        "sync_retry_schedule": (1.0, 5.0, 30.0),
    }
    values.update(overrides)
    return make_settings(database_url, data_dir, **values)


@pytest.fixture
def shop_settings(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(database_url, data_dir, simulator, root_path)


@pytest.fixture
async def worker(context: Context) -> Worker:
    """A worker to run due jobs with `drain()`, over a queue emptied of other tests' jobs."""
    await context.db.execute("DELETE FROM jobs")
    return make_worker(context, concurrency=8)


def _key_id() -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=10))


OFFER_PRODUCTS = ((MONTHLY_OFFER, "monthly"), (LIFETIME_OFFER, "lifetime"), (PASS_OFFER, "pass"))


async def sim_app(sim: httpx.AsyncClient, environment: str = "Sandbox") -> dict[str, Any]:
    """A new app in the simulator, with its key: the body of `PUT …/storekit2` for it."""
    bundle_id = f"com.test{secrets.token_hex(4)}.tv"
    app = {"bundleId": bundle_id, "keyId": _key_id(), "issuerId": str(uuid.uuid4())}
    made = await sim.post("/sim/apps", json=app)
    assert made.status_code == 201, made.text
    return {
        **app,
        "appAppleId": made.json()["appAppleId"],
        "privateKey": made.json()["privateKey"],
        "environment": environment,
    }


async def add_app(shop: Shop, environment: str = "Sandbox", **overrides: Any) -> str:
    """Another app of the shop's publisher (`PUT …/storekit2/apps/{bundleId}`), its products in
    the shop's offers beside the first app's; its bundle id."""
    app = {**await sim_app(shop.sim, environment), **overrides}
    bundle_id = str(app.pop("bundleId"))
    url = f"/admin/publishers/{shop.publisher.id}/storekit2/apps/{bundle_id}"
    answer = await shop.client.put(url, json=app, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    shop.bodies[bundle_id] = {**app, "bundleId": bundle_id}
    for offer_id, name in OFFER_PRODUCTS:
        products = [shop.product(name, bundle) for bundle in (*shop.apps, bundle_id)]
        body = {"title": name, "productIds": products}
        offer_url = f"/admin/publishers/{shop.publisher.id}/offers/{offer_id}"
        assert (await shop.client.put(offer_url, json=body, headers=ADMIN)).status_code == 200
    shop.apps.append(bundle_id)
    return bundle_id


@dataclass
class Shop:
    """A publisher wired to an app in the simulator, with offers and customers."""

    client: httpx.AsyncClient
    sim: httpx.AsyncClient
    context: Context
    publisher: PublisherRef
    bundle_id: str
    customers: list[int] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)  # every app's bundle id, the first one's first
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # each app's PUT body

    def product(self, name: str, bundle_id: str | None = None) -> str:
        return f"{bundle_id or self.bundle_id}.{name}"

    async def purchase(
        self,
        kind: str = "auto-renewable",
        name: str = "monthly",
        *,
        app: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A purchase in the shop's first app, or in `app` (a bundle id)."""
        bundle_id = app or self.bundle_id
        product = self.product(name, bundle_id)
        body = {"bundleId": bundle_id, "productId": product, "type": kind, **extra}
        answer = await self.sim.post("/sim/purchases", json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def act(self, transaction_id: str, action: str, **body: Any) -> dict[str, Any]:
        answer = await self.sim.post(
            f"/sim/purchases/{transaction_id}/{action}", json={"notify": False, **body}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def fault(self, kind: str, **extra: Any) -> None:
        answer = await self.sim.post("/sim/faults", json={"kind": kind, **extra})
        assert answer.status_code == 201, answer.text

    async def register(
        self,
        customer_id: int,
        transaction_id: str,
        *,
        headers: dict[str, str] | None = None,
        path: str = "/storekit2/purchases",
        **extra: Any,
    ) -> httpx.Response:
        body = {"cleengCustomerId": customer_id, "transactionId": transaction_id, **extra}
        return await self.client.post(path, json=body, headers=headers or self.publisher.headers)

    async def accepted(self, customer_id: int, transaction_id: str, **extra: Any) -> str:
        answer = await self.register(customer_id, transaction_id, **extra)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["synchronizationId"])

    async def poll(self, sync_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        answer = await self.client.get(
            f"/purchases/synchronizations/{sync_id}", headers=headers or self.publisher.headers
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def events(self, sync_id: str) -> list[tuple[str, dict[str, Any]]]:
        return await db.events(self.context.db, self.publisher.id, sync_id)

    async def subscriptions(self, **params: Any) -> dict[str, Any]:
        answer = await self.client.get(
            "/3.1/subscriptions", params=params, headers=self.publisher.headers
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def entitlement(self, customer_id: int, offer_id: str) -> dict[str, Any]:
        answer = await self.client.get(
            f"/3.1/entitlements/customer_id/{customer_id}/offer_id/{offer_id}",
            headers=self.publisher.headers,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def set_ownership(self, policy: str) -> dict[str, Any]:
        """The publisher's ownership policy, put with its first app (`PUT …/storekit2`)."""
        url = f"/admin/publishers/{self.publisher.id}/storekit2"
        body = {**self.bodies[self.bundle_id], "ownership": policy}
        answer = await self.client.put(url, json=body, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def app_account_token(self, customer_id: int) -> str:
        """The customer's appAccountToken, as its app would pass it to StoreKit."""
        url = f"/admin/publishers/{self.publisher.id}/customers/{customer_id}"
        answer = await self.client.get(url, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["appAccountToken"])

    async def customer_token(self, customer_id: int) -> dict[str, str]:
        url = f"/admin/publishers/{self.publisher.id}/customers/{customer_id}/tokens"
        answer = await self.client.post(url, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        return {"Authorization": f"Bearer {answer.json()['jwt']}"}


async def open_shop(
    client: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    context: Context,
    environment: str = "Sandbox",
) -> Shop:
    publisher = await new_publisher(client)
    integration = await sim_app(sim, environment)
    bundle_id = integration["bundleId"]
    url = f"/admin/publishers/{publisher.id}/storekit2"
    assert (await client.put(url, json=integration, headers=ADMIN)).status_code == 200
    shop = Shop(client, sim, context, publisher, bundle_id, apps=[bundle_id])
    shop.bodies[bundle_id] = integration
    for offer_id, name in OFFER_PRODUCTS:
        body = {"title": name, "productIds": [shop.product(name)]}
        offer_url = f"/admin/publishers/{publisher.id}/offers/{offer_id}"
        assert (await client.put(offer_url, json=body, headers=ADMIN)).status_code == 200
    shop.customers = [await new_customer(client, publisher) for _ in range(3)]
    return shop


@pytest.fixture
async def sim(simulator: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.base_url, timeout=10) as http:
        yield http
        await http.delete("/sim/faults")


@pytest.fixture
async def shop(client: httpx.AsyncClient, sim: httpx.AsyncClient, context: Context) -> Shop:
    return await open_shop(client, sim, context)
