"""Set up what the load needs, through the public APIs only (docs/api.md §5, §7, §11): an app in the
simulator and purchases of it (made while the service starts), then a publisher wired to that app,
an offer, customers and the webhook subscription."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.rawhttp import Connection

OFFER_ID = "S123456789_US"
SYNC_RESULT_TOPIC = "inappPurchaseSyncResult"
JSON = {"Content-Type": "application/json"}


class ProvisioningError(RuntimeError):
    pass


@dataclass(frozen=True)
class SimApp:
    """An app registered in the simulator, with the API key the service will use."""

    bundle_id: str
    product_id: str
    credentials: dict[str, Any]


@dataclass(frozen=True)
class Shop:
    publisher_id: int
    headers: dict[str, str]  # the publisher token
    customers: tuple[int, ...]
    jwts: tuple[str, ...]  # each customer's own token, for the customer-JWT phase
    webhooks: bool
    webhook_note: str


async def _call(
    connection: Connection,
    method: str,
    path: str,
    payload: object,
    expected: int,
    headers: Mapping[str, str] | None = None,
) -> Any:
    answer = await connection.request(method, path, json.dumps(payload).encode(), headers)
    if answer.status != expected:
        raise ProvisioningError(f"{method} {path}: {answer.status} {answer.body[:300]!r}")
    return json.loads(answer.body) if answer.body else None


async def register_app(sim_port: int) -> SimApp:
    bundle = f"com.bench{secrets.token_hex(4)}.tv"
    sim = Connection(sim_port, JSON)
    try:
        made = await _call(sim, "POST", "/sim/apps", {"bundleId": bundle}, 201)
    finally:
        await sim.close()
    keys = ("appAppleId", "issuerId", "keyId", "privateKey")
    return SimApp(bundle, f"{bundle}.monthly", {k: made[k] for k in keys})


async def _buyer(sim: Connection, body: bytes, count: int, bought: list[str]) -> None:
    for _ in range(count):
        if len(bought) >= count:
            return
        answer = await sim.request("POST", "/sim/purchases", body)
        if answer.status != 201:
            raise ProvisioningError(f"POST /sim/purchases: {answer.status} {answer.body[:300]!r}")
        bought.append(str(json.loads(answer.body)["transactionId"]))


async def create_purchases(
    sim_port: int, app: SimApp, count: int, concurrency: int = 8
) -> list[str]:
    """`count` new auto-renewable purchases in the simulator; their transaction ids."""
    body = json.dumps(
        {"bundleId": app.bundle_id, "productId": app.product_id, "type": "auto-renewable"}
    ).encode()
    bought: list[str] = []
    connections = [Connection(sim_port, JSON) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(_buyer(c, body, count, bought) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    return bought[:count]


async def _subscribe(
    service: Connection, token: dict[str, str], sink_port: int
) -> tuple[bool, str]:
    """Subscribe the sink to the sync results; (False, why) when the service cannot (yet)."""
    endpoint = {
        "url": f"http://127.0.0.1:{sink_port}/hooks",
        "verification": {
            "name": "HMAC",
            "options": {"hashAlg": "SHA256", "sharedSecret": secrets.token_hex(16)},
        },
    }
    path = f"/3.1/webhook_subscriptions/{SYNC_RESULT_TOPIC}"
    answer = await service.request("PUT", path, json.dumps([endpoint]).encode(), token)
    if answer.status == 200:
        return True, "webhook to the sink"
    return False, f"webhooks unavailable (PUT {path} answered {answer.status})"


async def _publisher(
    service: Connection, admin: dict[str, str], app: SimApp
) -> tuple[int, dict[str, str]]:
    made = await _call(service, "POST", "/admin/publishers", {"name": "Bench"}, 201, admin)
    publisher_id, token = int(made["publisherId"]), {"X-Publisher-Token": made["publisherToken"]}
    integration = {"bundleId": app.bundle_id, **app.credentials, "environment": "Sandbox"}
    base = f"/admin/publishers/{publisher_id}"
    await _call(service, "PUT", f"{base}/storekit2", integration, 200, admin)
    offer = {"title": "Bench monthly", "productIds": [app.product_id]}
    await _call(service, "PUT", f"{base}/offers/{OFFER_ID}", offer, 200, admin)
    return publisher_id, token


async def provision(
    service_port: int, sink_port: int, admin_token: str, app: SimApp, customers: int
) -> Shop:
    admin = {"X-Admin-Token": admin_token}
    service = Connection(service_port, JSON)
    try:
        publisher_id, token = await _publisher(service, admin, app)
        ids, jwts = [], []
        base = f"/admin/publishers/{publisher_id}/customers"
        for i in range(customers):
            made = await _call(
                service, "POST", base, {"email": f"bench{i}@example.com"}, 201, admin
            )
            ids.append(int(made["customerId"]))
            issued = await _call(service, "POST", f"{base}/{ids[-1]}/tokens", None, 201, admin)
            jwts.append(str(issued["jwt"]))
        webhooks, note = await _subscribe(service, token, sink_port)
    finally:
        await service.close()
    return Shop(publisher_id, token, tuple(ids), tuple(jwts), webhooks, note)
