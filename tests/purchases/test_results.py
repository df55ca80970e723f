"""Every result of docs/api.md §3's table, from purchases made in the simulator, and what each leaves."""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg

from app.clock import MovableClock
from app.jobs.worker import Worker
from tests.helpers.shop import LIFETIME_OFFER, MONTHLY_OFFER, PASS_OFFER, Shop

DAY_MS = 86_400_000


def topics(events: list[tuple[str, dict[str, object]]]) -> list[str]:
    return [topic for topic, _ in events]


async def test_subscription_created(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    customer = shop.customers[0]
    sync_id = await shop.accepted(customer, bought["transactionId"])
    assert (await shop.poll(sync_id))["status"] == "processing"
    assert await worker.drain() == 1
    polled = await shop.poll(sync_id)
    assert polled["status"] == "finalized"
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert polled["accessGranted"] is True
    assert polled["offerId"] == MONTHLY_OFFER
    assert polled["originalTransactionId"] == bought["originalTransactionId"]
    assert polled["cleengCustomerId"] == customer
    assert "correlationId" not in polled
    listed = await shop.subscriptions(customerId=customer)
    assert listed["total"] == 1
    subscription = listed["items"][0]
    assert subscription["status"] == "active"
    assert subscription["offerId"] == MONTHLY_OFFER
    assert subscription["environment"] == "Sandbox"
    assert subscription["autoRenew"] is True
    expires = int(datetime.fromisoformat(subscription["expiresAt"]).timestamp())
    assert expires == bought["expiresDate"] // 1000
    entitlement = await shop.entitlement(customer, MONTHLY_OFFER)
    assert entitlement == {"accessGranted": True, "expiresAt": expires}
    mine = await shop.client.get(
        f"/entitlements/{MONTHLY_OFFER}", headers=await shop.customer_token(customer)
    )
    assert mine.json() == entitlement
    events = await shop.events(sync_id)
    assert topics(events) == [
        "inappPurchaseValidationSucceeded",
        "subscriptionCreated",
        "inappPurchaseSyncResult",
    ]
    assert events[0][1]["result"] == "SubscriptionCreated"
    assert events[0][1]["offerType"] == "subscription"
    assert events[2][1] == {
        "synchronizationId": sync_id,
        "transactionId": bought["transactionId"],
        "cleengCustomerId": customer,
        "originalTransactionId": bought["originalTransactionId"],
        "accessGranted": True,
        "offerId": MONTHLY_OFFER,
        "result": "SUBSCRIPTION_CREATED",
    }


async def test_a_created_subscription_writes_its_sync_once(shop: Shop, worker: Worker) -> None:
    """The finalize inserts the new subscription for its id; the sync is written once, after."""
    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    statements: list[str] = []

    async def watch(connection: asyncpg.Connection) -> None:  # every statement it runs
        connection.add_query_logger(lambda query: statements.append(query.query))

    db = shop.context.db
    await shop.context.tokens.written()  # the tokens' lastUsedAt: no other statement in flight
    served = db.pool
    db.pool = await asyncpg.create_pool(db.url, min_size=1, max_size=4, init=watch)
    try:
        assert await worker.drain() == 1
    finally:
        await db.pool.close()
        db.pool = served
    assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    updates = [s.strip() for s in statements if "UPDATE synchronizations" in s]
    assert len(updates) == 1, updates
    assert "original_transaction_id" in updates[0] and "status" in updates[0]
    assert any("INSERT INTO subscriptions" in s for s in statements)


async def test_ownership_unchanged_on_resync(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    customer = shop.customers[0]
    await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    renewed = await shop.act(bought["transactionId"], "renew")
    again = await shop.accepted(customer, renewed["transactionId"])
    await worker.drain()
    polled = await shop.poll(again)
    assert polled["result"] == "PURCHASE_OWNERSHIP_UNCHANGED"
    assert polled["accessGranted"] is True
    listed = await shop.subscriptions(customerId=customer)
    assert listed["total"] == 1, "a re-sync must not create a second subscription"
    assert listed["items"][0]["latestTransactionId"] == renewed["transactionId"]
    events = await shop.events(again)
    assert topics(events) == ["inappPurchaseValidationSucceeded", "inappPurchaseSyncResult"]
    assert events[0][1]["result"] == "SubscriptionSynchronized"


async def test_ownership_transferred_to_another_customer(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    first, second = shop.customers[:2]
    await shop.accepted(first, bought["transactionId"])
    await worker.drain()
    old = (await shop.subscriptions(customerId=first))["items"][0]
    sync_id = await shop.accepted(second, bought["transactionId"])
    await worker.drain()
    assert (await shop.poll(sync_id))["result"] == "PURCHASE_OWNERSHIP_TRANSFERRED"
    assert (await shop.subscriptions(customerId=first))["items"][0]["status"] == "terminated"
    new = (await shop.subscriptions(customerId=second))["items"][0]
    assert new["status"] == "active"
    assert (await shop.entitlement(first, MONTHLY_OFFER))["accessGranted"] is False
    assert (await shop.entitlement(second, MONTHLY_OFFER))["accessGranted"] is True
    events = await shop.events(sync_id)
    assert topics(events) == [
        "inappPurchaseValidationSucceeded",
        "subscriptionTerminated",
        "subscriptionCreated",
        "inappPurchaseSyncResult",
    ]
    succeeded, terminated = events[0][1], events[1][1]
    assert succeeded["result"] == "SubscriptionTransferred"
    assert succeeded["prevSubscriptionId"] == old["subscriptionId"]
    assert succeeded["prevCustomerId"] == first
    assert terminated["reason"] == "TRANSFERRED"
    assert terminated["subscriptionId"] == old["subscriptionId"]


async def test_received_expired_purchase(shop: Shop, worker: Worker) -> None:
    now = int(time.time() * 1000)
    bought = await shop.purchase(purchaseDate=now - 40 * DAY_MS, expiresDate=now - 10 * DAY_MS)
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    polled = await shop.poll(sync_id)
    assert polled["result"] == "RECEIVED_EXPIRED_PURCHASE"
    assert polled["accessGranted"] is False
    assert "offerId" not in polled
    assert (await shop.subscriptions(customerId=shop.customers[0]))["total"] == 0
    events = await shop.events(sync_id)
    assert topics(events) == ["inappPurchaseValidationFailed", "inappPurchaseSyncResult"]
    assert events[0][1]["reason"] == "RECEIVED_EXPIRED_PURCHASE"


async def test_purchase_revoked_terminates_the_subscription(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    customer = shop.customers[0]
    await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    await shop.act(bought["transactionId"], "refund")
    sync_id = await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    polled = await shop.poll(sync_id)
    assert polled["result"] == "PURCHASE_REVOKED"
    assert polled["accessGranted"] is False
    assert (await shop.subscriptions(customerId=customer))["items"][0]["status"] == "terminated"
    assert (await shop.entitlement(customer, MONTHLY_OFFER))["accessGranted"] is False
    events = await shop.events(sync_id)
    assert topics(events) == [
        "inappPurchaseValidationFailed",
        "subscriptionTerminated",
        "inappPurchaseSyncResult",
    ]
    assert events[1][1]["reason"] == "REFUNDED"


async def test_transaction_id_not_found(shop: Shop, worker: Worker) -> None:
    sync_id = await shop.accepted(shop.customers[0], "1999999999999999")
    await worker.drain()
    polled = await shop.poll(sync_id)
    assert polled["result"] == "TRANSACTION_ID_NOT_FOUND"
    assert polled["accessGranted"] is False
    failed = (await shop.events(sync_id))[0][1]
    assert failed["inAppSpecificData"] == {
        "transactionId": "1999999999999999",
        "originalTransactionId": None,
        "productId": None,
        "environment": None,
    }


async def test_offer_not_found(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase(name="unmapped")
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    assert (await shop.poll(sync_id))["result"] == "OFFER_NOT_FOUND"


async def test_invalid_transaction_from_another_environment(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase(environment="Production")  # the integration is Sandbox only
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    polled = await shop.poll(sync_id)
    assert polled["result"] == "INVALID_TRANSACTION"
    assert polled["accessGranted"] is False


async def test_unsupported_consumable(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase(kind="consumable", name="coins")
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    assert (await shop.poll(sync_id))["result"] == "UNSUPPORTED_PRODUCT_TYPE"


async def test_non_consumable_is_a_lifetime_pass(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase(kind="non-consumable", name="lifetime")
    customer = shop.customers[0]
    sync_id = await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    assert await shop.entitlement(customer, LIFETIME_OFFER) == {
        "accessGranted": True,
        "expiresAt": None,
    }
    succeeded = (await shop.events(sync_id))[0][1]
    assert succeeded["offerType"] == "pass"
    assert succeeded["expirationDate"] is None


async def test_non_renewing_until_its_expiry(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    expires = int(time.time() * 1000) + 7 * DAY_MS
    bought = await shop.purchase(kind="non-renewing", name="pass", expiresDate=expires)
    customer = shop.customers[0]
    await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    assert await shop.entitlement(customer, PASS_OFFER) == {
        "accessGranted": True,
        "expiresAt": expires // 1000,
    }
    clock.advance(8 * 86_400)
    assert (await shop.entitlement(customer, PASS_OFFER))["accessGranted"] is False
    assert (await shop.subscriptions(customerId=customer))["items"][0]["status"] == "expired"


async def test_auto_environment_finds_sandbox_purchases(shop: Shop, worker: Worker) -> None:
    from tests.helpers.shop import open_shop

    auto = await open_shop(shop.client, shop.sim, shop.context, environment="Auto")
    bought = await auto.purchase(environment="Sandbox")
    sync_id = await auto.accepted(auto.customers[0], bought["transactionId"])
    await worker.drain()
    assert (await auto.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    production = await auto.purchase(environment="Production")
    sync_id = await auto.accepted(auto.customers[1], production["transactionId"])
    await worker.drain()
    assert (await auto.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    items = (await auto.subscriptions())["items"]
    assert sorted(i["environment"] for i in items) == ["Production", "Sandbox"]


async def test_subscriptions_filters(shop: Shop, worker: Worker) -> None:
    first, second = shop.customers[:2]
    for customer, name, kind in (
        (first, "monthly", "auto-renewable"),
        (second, "lifetime", "non-consumable"),
    ):
        bought = await shop.purchase(kind=kind, name=name)
        await shop.accepted(customer, bought["transactionId"])
    await worker.drain()
    assert (await shop.subscriptions())["total"] == 2
    assert (await shop.subscriptions(offerId=LIFETIME_OFFER))["items"][0]["customerId"] == second
    assert (await shop.subscriptions(status="active"))["total"] == 2
    assert (await shop.subscriptions(status="terminated"))["total"] == 0
    page = await shop.subscriptions(limit=1, offset=1)
    assert page["total"] == 2
    assert len(page["items"]) == 1
    bad = await shop.client.get(
        "/3.1/subscriptions", params={"limit": 101}, headers=shop.publisher.headers
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "REQ0001"


async def test_metrics_follow_the_syncs(shop: Shop, worker: Worker, clock: MovableClock) -> None:
    def sample(text: str, series: str) -> float:
        """The value of one series (name with its labels), 0 when it has no sample yet."""
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    created = 'storekit_sync_results_total{result="SUBSCRIPTION_CREATED"}'
    calls = 'storekit_apple_calls_total{operation="get_all_subscription_statuses",outcome="ok"}'
    before = (await shop.client.get("/metrics")).text
    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    clock.advance(5)  # the database's gauges are read at most every 5 seconds
    during = (await shop.client.get("/metrics")).text
    assert 'storekit_jobs_due{kind="sync"}' in during
    assert 'storekit_synchronizations{status="processing"}' in during
    await worker.drain()
    after = await shop.client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert sample(after.text, created) == sample(before, created) + 1
    assert sample(after.text, calls) == sample(before, calls) + 1
    route = 'storekit_http_requests_total{method="POST",route="/storekit2/purchases",status="202"}'
    assert sample(after.text, route) >= 1
    assert (await shop.poll(sync_id))["status"] == "finalized"


async def test_one_apple_call_syncs_a_subscription_two_a_one_time_purchase(
    shop: Shop, worker: Worker
) -> None:
    """Get All Subscription Statuses answers for a subscription with everything a sync needs;
    only a purchase that is no subscription's needs Get Transaction Info as well."""

    async def calls(kind: str, name: str) -> dict[str, int]:
        await shop.sim.delete("/sim/calls")
        bought = await shop.purchase(kind, name)
        await shop.accepted(shop.customers[0], bought["transactionId"])
        assert await worker.drain() == 1
        counted = (await shop.sim.get("/sim/calls")).json()["calls"]
        return {c["route"].split("/")[3]: c["count"] for c in counted}

    assert await calls("auto-renewable", "monthly") == {"subscriptions": 1}
    assert await calls("non-consumable", "lifetime") == {"subscriptions": 1, "transactions": 1}
