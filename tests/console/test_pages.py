"""The console's pages: what a customer's and a purchase's timelines say, search, the overview,
and that every value shown is escaped and every page kept to its publisher."""

from __future__ import annotations

import uuid

import httpx

from app.activity.flush import flush
from app.jobs.worker import Worker
from tests.helpers.appstore import Apple
from tests.helpers.console import Console, text_of
from tests.helpers.receiver import Receiver
from tests.helpers.shop import Shop
from tests.helpers.webhooks import subscribe


async def _synced(shop: Shop, worker: Worker, **headers: str) -> tuple[dict[str, object], str]:
    bought = await shop.purchase()
    answer = await shop.register(
        shop.customers[0],
        str(bought["transactionId"]),
        headers={**shop.publisher.headers, **headers},
    )
    assert answer.status_code == 202, answer.text
    assert await worker.drain() == 1
    return bought, str(answer.json()["synchronizationId"])


async def test_a_customer_s_timeline_says_what_happened(
    shop: Shop, worker: Worker, receiver: Receiver, operator: Console
) -> None:
    await subscribe(shop.client, shop.publisher, receiver, ["pages"])
    bought, sync_id = await _synced(shop, worker)
    customer = shop.customers[0]
    page = await operator.get(f"/console/customers/{customer}")
    assert page.status_code == 200
    seen = text_of(page.text)
    assert f"Customer {customer}" in seen
    assert f"Sync {sync_id}" in seen and "SUBSCRIPTION_CREATED" in seen
    assert "Apple said: the transaction" in seen and "Apple said: renewal info" in seen
    assert f"Purchase {bought['originalTransactionId']}" in seen
    # Apple's dates are dates, never milliseconds.
    assert str(bought["expiresDate"]) not in page.text
    assert "Expires date" in seen and "UTC" in seen
    assert "1 sync, 0 notifications from Apple, 1 subscription, 3 webhook events" in seen
    assert "inappPurchaseSyncResult" in seen and "200" in seen  # its delivery and attempt
    for header, value in (("x-frame-options", "DENY"), ("cache-control", "no-store")):
        assert page.headers[header] == value


async def test_a_refund_and_its_webhook_are_on_the_purchase_s_timeline(
    apple: Apple, receiver: Receiver, operator: Console
) -> None:
    shop = apple.shop
    answer = await shop.client.put(
        "/3.1/webhook_subscriptions/subscriptionTerminated",
        json=[{"url": receiver.url("refunds")}],
        headers=shop.publisher.headers,
    )
    receiver["refunds"].secret = answer.json()[0]["verification"]["options"]["sharedSecret"]
    bought, _ = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund")
    assert await apple.worker.drain() >= 1
    url = f"/console/publishers/{shop.publisher.id}/purchases/{bought['originalTransactionId']}"
    seen = text_of((await operator.get(url)).text)
    assert "REFUND" in seen and "posted by Apple" in seen and "applied" in seen
    assert "subscriptionTerminated" in seen and "REFUNDED" in seen
    assert "succeeded" in seen  # the refund webhook reached the endpoint
    assert "Re-sync this purchase" in seen
    assert len(receiver["refunds"].verified()) == 1


async def test_a_notification_recovered_from_apple_s_history_says_so(
    apple: Apple, operator: Console
) -> None:
    bought, _ = await apple.subscribed()
    await apple.act(bought["transactionId"], "renew")
    assert await apple.worker.drain() == 1
    # As the reconciliation stores what it recovers (tests/reconcile shows it doing so).
    await apple.shop.context.db.execute(
        "UPDATE apple_notifications SET source = 'history' WHERE publisher_id = $1",
        apple.shop.publisher.id,
    )
    url = (
        f"/console/publishers/{apple.shop.publisher.id}/purchases/{bought['originalTransactionId']}"
    )
    seen = text_of((await operator.get(url)).text)
    assert "DID_RENEW" in seen and "recovered from Apple's notification history" in seen
    assert "posted by Apple" not in seen


async def test_a_sync_shows_what_apple_said(shop: Shop, worker: Worker, operator: Console) -> None:
    _, sync_id = await _synced(shop, worker)
    page = await operator.get(f"/console/publishers/{shop.publisher.id}/syncs/{sync_id}")
    seen = text_of(page.text)
    assert "What Apple said" in seen and "Auto-Renewable Subscription" in seen
    assert "Auto renew status 1 (on)" in seen
    assert "Status 1 (active)" in seen
    assert f"App {shop.bundle_id}" in seen  # the app Apple knew it in
    missing = await shop.accepted(shop.customers[1], "2000000999999997")
    await worker.drain()
    page = await operator.get(f"/console/publishers/{shop.publisher.id}/syncs/{missing}")
    seen = text_of(page.text)
    assert "TRANSACTION_ID_NOT_FOUND" in seen and "Nothing verified" in seen


async def test_search_finds_each_kind_of_id(shop: Shop, worker: Worker, operator: Console) -> None:
    bought, sync_id = await _synced(shop, worker)
    customer, pid = shop.customers[0], shop.publisher.id
    email = await shop.context.db.fetchval("SELECT email FROM customers WHERE id = $1", customer)
    one = {
        str(customer): f"/console/customers/{customer}",
        str(email): f"/console/customers/{customer}",
        str(email).upper(): f"/console/customers/{customer}",
        sync_id: f"/console/publishers/{pid}/syncs/{sync_id}",
    }
    for term, where in one.items():
        answer = await operator.get("/console/search", q=term)
        assert answer.status_code == 303, term
        assert answer.headers["location"] == where
    original = str(bought["originalTransactionId"])
    purchase = await operator.get("/console/search", q=original, kind="original")
    assert purchase.headers["location"] == f"/console/publishers/{pid}/purchases/{original}"
    both = await operator.get("/console/search", q=original, kind="transaction")
    assert both.status_code == 200  # the purchase, and the sync of that transaction
    assert f"Purchase {original}" in text_of(both.text) and f"Sync {sync_id}" in text_of(both.text)
    nothing = await operator.get("/console/search", q="nobody@example.com")
    assert "0 found" in text_of(nothing.text)


async def test_a_publisher_never_sees_another_s(
    shop: Shop, other_shop: Shop, worker: Worker, client: httpx.AsyncClient
) -> None:
    bought, sync_id = await _synced(shop, worker)
    stranger = Console(client)
    await stranger.sign_in(other_shop.publisher.token)
    pid, original = shop.publisher.id, bought["originalTransactionId"]
    for path in (
        f"/console/customers/{shop.customers[0]}",
        f"/console/publishers/{pid}/purchases/{original}",
        f"/console/publishers/{pid}/syncs/{sync_id}",
        f"/console/publishers/{pid}/deliveries/1",
        f"/console/publishers/{pid}",
        f"/console/publishers/{pid}/purchases/{original}/resync",
    ):
        answer = await stranger.get(path)
        assert answer.status_code == 404, path
        assert str(shop.customers[0]) not in answer.text or "customers" in path
    found = await stranger.get("/console/search", q=str(shop.customers[0]))
    assert "0 found" in text_of(found.text)
    found = await stranger.get("/console/search", q=sync_id)
    assert "0 found" in text_of(found.text)


async def test_every_value_shown_is_escaped(shop: Shop, worker: Worker, operator: Console) -> None:
    hostile = f"<script>alert('{uuid.uuid4().hex[:6]}')</script>"
    _, sync_id = await _synced(shop, worker, **{"Correlation-Id": hostile})
    assert sync_id == hostile
    page = await operator.get(f"/console/customers/{shop.customers[0]}")
    assert hostile not in page.text
    assert "&lt;script&gt;" in page.text
    page = await operator.get("/console/search", q=hostile)
    assert page.status_code == 303
    shown = await operator.client.get(page.headers["location"])
    assert shown.status_code == 200 and hostile not in shown.text


async def test_the_overview_charts_what_was_done(
    shop: Shop, worker: Worker, receiver: Receiver, operator: Console
) -> None:
    await subscribe(shop.client, shop.publisher, receiver, ["overview"])
    await _synced(shop, worker)
    context = shop.context
    await flush(context.db, context.activity, context.clock.now())
    page = await operator.get("/console", publisher=str(shop.publisher.id))
    seen = text_of(page.text)
    assert f"Publisher {shop.publisher.id}" in seen
    assert "1 finalized" in seen and "1 call" in seen and "1 attempt, 100.0% answered 2xx" in seen
    assert "SUBSCRIPTION_CREATED: 1" in page.text  # a bar's title
    assert "Syncs processing" in seen  # a publisher's share of the queue, not the queue's history
    day = await operator.get("/console", range="day")
    assert "Every publisher, over the last day" in text_of(day.text)
    assert "Jobs due now" in text_of(day.text) and "Queue depth" in text_of(day.text)
    assert "<script" not in day.text


async def test_a_publisher_s_page_lists_its_apps_and_endpoints(
    shop: Shop, receiver: Receiver, operator: Console
) -> None:
    await subscribe(shop.client, shop.publisher, receiver, ["listed"])
    page = await operator.get(f"/console/publishers/{shop.publisher.id}")
    seen = text_of(page.text)
    assert shop.bundle_id in seen and "Sandbox" in seen
    assert "Ownership policy transfer" in seen
    assert receiver.url("listed") in seen
    assert "privateKey" not in page.text and "BEGIN PRIVATE KEY" not in page.text
    listed = text_of((await operator.get("/console/publishers")).text)
    assert shop.bundle_id in listed
