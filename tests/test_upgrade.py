"""A database of a one-app publisher, as the service left it before apps (revision 0010), upgraded:
the same requests keep working, unchanged. Its integration's key was written in the older format,
its purchase synchronized, another register still waiting for its sync."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.main import create_app
from app.migrate import migrate
from app.runtime import make_worker
from app.security import SecretBox, hash_token
from app.simulator.server import BackgroundServer, SimulatorServer
from tests.helpers.api import ADMIN, running
from tests.helpers.shop import MONTHLY_OFFER, sim_app, sync_settings

SECRET_KEY = "an-old-secret-key-of-a-deployed-service-0123456789"
PUBLISHER, CUSTOMER, OTHER = 912345678, 123456789, 234567891
BEFORE_APPS = "0010"  # the revision before storekit2_apps


async def _old_database(url: str, app: dict[str, Any], synced: dict[str, Any], waiting: str) -> str:
    """What the service wrote at 0010: a publisher, its integration (the key in the older
    format), an offer, two customers, a synchronized purchase and a register not yet run."""
    token = "skp_" + secrets.token_urlsafe(32)
    old_key = SecretBox(SECRET_KEY).encrypt(app["privateKey"])
    now = datetime.now(UTC)
    expires = datetime.fromtimestamp(synced["expiresDate"] / 1000, UTC)
    c = await asyncpg.connect(url)
    try:
        await c.execute(
            "INSERT INTO publishers (id, name, token_hash) VALUES ($1, 'Acme TV', $2)",
            PUBLISHER,
            hash_token(token),
        )
        await c.execute(
            "INSERT INTO storekit2_integrations (publisher_id, bundle_id, app_apple_id,"
            " issuer_id, key_id, private_key_encrypted, environment, active)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'Sandbox', true)",
            PUBLISHER,
            app["bundleId"],
            app["appAppleId"],
            app["issuerId"],
            app["keyId"],
            old_key,
        )
        await c.execute(
            "INSERT INTO offers (publisher_id, offer_id, title) VALUES ($1, $2, 'monthly')",
            PUBLISHER,
            MONTHLY_OFFER,
        )
        await c.execute(
            "INSERT INTO offer_products (publisher_id, product_id, offer_id) VALUES ($1, $2, $3)",
            PUBLISHER,
            f"{app['bundleId']}.monthly",
            MONTHLY_OFFER,
        )
        for customer in (CUSTOMER, OTHER):
            await c.execute(
                "INSERT INTO customers (id, publisher_id, email) VALUES ($1, $2, $3)",
                customer,
                PUBLISHER,
                f"{customer}@example.com",
            )
        subscription = await c.fetchval(
            "INSERT INTO subscriptions (publisher_id, customer_id, offer_id, status, product_type,"
            " product_id, original_transaction_id, latest_transaction_id, environment,"
            " expires_at, apple_status, auto_renew, in_trial, apple_signed_at, created_at,"
            " updated_at) VALUES ($1, $2, $3, 'active', 'Auto-Renewable Subscription', $4, $5,"
            " $5, 'Sandbox', $6, 1, true, false, $7, $7, $7) RETURNING id",
            PUBLISHER,
            CUSTOMER,
            MONTHLY_OFFER,
            f"{app['bundleId']}.monthly",
            synced["originalTransactionId"],
            expires,
            now - timedelta(minutes=1),
        )
        await c.execute(
            "INSERT INTO synchronizations (publisher_id, id, kind, transaction_id, customer_id,"
            " request_hash, status, attempts, result, access_granted, offer_id,"
            " original_transaction_id, subscription_id, created_at, updated_at)"
            " VALUES ($1, 'synced-before', 'register', $2, $3, 'h', 'finalized', 0,"
            " 'SUBSCRIPTION_CREATED', true, $4, $2, $5, $6, $6)",
            PUBLISHER,
            synced["transactionId"],
            CUSTOMER,
            MONTHLY_OFFER,
            subscription,
            now,
        )
        await c.execute(
            "WITH sync AS (INSERT INTO synchronizations (publisher_id, id, kind, transaction_id,"
            " customer_id, request_hash, status, attempts, created_at, updated_at)"
            " VALUES ($1, 'waiting-before', 'register', $2, $3, 'h', 'processing', 0, $4, $4)"
            " RETURNING publisher_id, id)"
            " INSERT INTO jobs (kind, payload, run_at, attempts, created_at)"
            " SELECT 'sync', jsonb_build_object('publisherId', publisher_id,"
            " 'synchronizationId', id), $4, 0, $4 FROM sync",
            PUBLISHER,
            waiting,
            OTHER,
            now,
        )
    finally:
        await c.close()
    return token


@pytest.fixture
async def upgraded(
    scratch_url: str,
    tmp_path: Path,
    simulator: SimulatorServer,
    sim: httpx.AsyncClient,
    root_path: Path,
) -> tuple[Settings, dict[str, Any], str]:
    """A database at BEFORE_APPS with a one-app publisher, upgraded to the head; its settings (the
    deployed service's SECRET_KEY), the simulator's app, the publisher's token."""
    await asyncio.to_thread(migrate, scratch_url, BEFORE_APPS)
    app = await sim_app(sim)
    bought = (await sim.post("/sim/purchases", json=_purchase(app))).json()
    waiting = (await sim.post("/sim/purchases", json=_purchase(app))).json()
    token = await _old_database(scratch_url, app, bought, waiting["transactionId"])
    await asyncio.to_thread(migrate, scratch_url)
    settings = sync_settings(scratch_url, tmp_path, simulator, root_path, secret_key=SECRET_KEY)
    return settings, {"app": app, "synced": bought, "waiting": waiting}, token


def _purchase(app: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundleId": app["bundleId"],
        "productId": f"{app['bundleId']}.monthly",
        "type": "auto-renewable",
    }


async def test_a_one_app_publisher_works_unchanged_after_the_upgrade(
    upgraded: tuple[Settings, dict[str, Any], str], sim: httpx.AsyncClient
) -> None:
    settings, made, token = upgraded
    headers = {"X-Publisher-Token": token}
    app, synced = made["app"], made["synced"]
    clock = MovableClock()
    async with running(settings, clock) as (application, client):
        context: Context = application.state.context
        worker = make_worker(context)
        shown = await client.get(f"/admin/publishers/{PUBLISHER}/storekit2", headers=ADMIN)
        assert shown.json()["active"] is True
        assert [(a["bundleId"], a["keyId"]) for a in shown.json()["apps"]] == [
            (app["bundleId"], app["keyId"])
        ]
        # The register accepted before the upgrade runs after it, with the app moved.
        assert await worker.drain() == 1
        waiting = await _poll(client, "waiting-before", headers)
        assert (waiting["result"], waiting["cleengCustomerId"]) == ("SUBSCRIPTION_CREATED", OTHER)
        # The synchronized purchase, registered again with the same request as before.
        body = {"cleengCustomerId": CUSTOMER, "transactionId": synced["transactionId"]}
        answer = await client.post("/storekit2/purchases", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert await worker.drain() == 1
        again = await _poll(client, answer.json()["synchronizationId"], headers)
        assert again["result"] == "PURCHASE_OWNERSHIP_UNCHANGED"
        assert (
            await context.db.fetchval(
                "SELECT bundle_id FROM subscriptions WHERE original_transaction_id = $1",
                synced["originalTransactionId"],
            )
            == app["bundleId"]
        ), "the migration named the purchase's app"
        # Apple's notifications, to the same URL.
        served = BackgroundServer(create_app(settings, clock=clock))
        await asyncio.to_thread(served.start)
        try:
            url = f"{served.base_url}/apple/notifications/{PUBLISHER}"
            await sim.put(f"/sim/apps/{app['bundleId']}/notification-url", json={"url": url})
            renewed = await sim.post(
                f"/sim/purchases/{synced['transactionId']}/renew", json={"notify": True}
            )
            assert renewed.json()["notification"]["statusCode"] == 200, renewed.text
        finally:
            await asyncio.to_thread(served.stop)
        assert await worker.drain() == 1
        notes = await client.get(f"/admin/publishers/{PUBLISHER}/notifications", headers=ADMIN)
        assert notes.json()["items"][0]["status"] == "applied"


async def _poll(client: httpx.AsyncClient, sync_id: str, headers: dict[str, str]) -> Any:
    answer = await client.get(f"/purchases/synchronizations/{sync_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_an_integration_switched_off_stays_off_with_its_app(
    scratch_url: str, tmp_path: Path, simulator: SimulatorServer, root_path: Path
) -> None:
    """Before apps, DELETE …/storekit2 switched the integration off and kept it: after the
    upgrade it is still off (registers answer SK2C0004), and its app is still listed."""
    await asyncio.to_thread(migrate, scratch_url, BEFORE_APPS)
    token = "skp_" + secrets.token_urlsafe(32)
    c = await asyncpg.connect(scratch_url)
    try:
        await c.execute(
            "INSERT INTO publishers (id, name, token_hash) VALUES ($1, 'Off TV', $2)",
            PUBLISHER,
            hash_token(token),
        )
        await c.execute(
            "INSERT INTO storekit2_integrations (publisher_id, bundle_id, issuer_id, key_id,"
            " private_key_encrypted, environment, active)"
            " VALUES ($1, 'com.off.tv', 'issuer', 'KEY1234567', $2, 'Sandbox', false)",
            PUBLISHER,
            SecretBox(SECRET_KEY).encrypt("a key"),
        )
        await c.execute(
            "INSERT INTO customers (id, publisher_id, email) VALUES ($1, $2, 'a@example.com')",
            CUSTOMER,
            PUBLISHER,
        )
    finally:
        await c.close()
    await asyncio.to_thread(migrate, scratch_url)
    settings = sync_settings(scratch_url, tmp_path, simulator, root_path, secret_key=SECRET_KEY)
    async with running(settings, MovableClock()) as (_, client):
        shown = (await client.get(f"/admin/publishers/{PUBLISHER}/storekit2", headers=ADMIN)).json()
        assert (shown["active"], shown["ownership"]) == (False, "transfer")
        assert [a["bundleId"] for a in shown["apps"]] == ["com.off.tv"]
        body = {"cleengCustomerId": CUSTOMER, "transactionId": "123"}
        answer = await client.post(
            "/storekit2/purchases", json=body, headers={"X-Publisher-Token": token}
        )
        assert (answer.status_code, answer.json()["code"]) == (500, "SK2C0004")
        customer = await client.get(
            f"/admin/publishers/{PUBLISHER}/customers/{CUSTOMER}", headers=ADMIN
        )
        assert customer.json()["appAccountToken"], "existing customers got their token"
