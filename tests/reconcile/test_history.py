"""Apple's notification history: what the service never received is recovered, stored as
`history` and applied exactly as a posted notification; what it received is not stored twice;
a window a pass could not finish is resumed where it stopped."""

from __future__ import annotations

from typing import Any

from app.clock import MovableClock
from tests.helpers.api import ADMIN
from tests.helpers.appstore import Apple, topics
from tests.helpers.keys import p256_pem
from tests.helpers.reconcile import cursor, run_pass
from tests.helpers.shop import Shop, add_app

MISSED = {"failDelivery": "SOCKET_ISSUE"}  # recorded by the simulator as failed, never posted


async def test_a_refund_that_never_arrived_is_recovered_and_ends_access(
    apple: Apple, clock: MovableClock
) -> None:
    bought, customer = await apple.subscribed()
    done = await apple.act(bought["transactionId"], "refund", expect=None, **MISSED)
    assert [a["sendAttemptResult"] for a in done["notification"]["attempts"]] == ["SOCKET_ISSUE"]
    assert (await apple.access(customer))["accessGranted"] is True, "the service missed it"
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["recovered"]) == ("completed", 1)
    assert (await apple.access(customer))["accessGranted"] is False
    assert (await apple.subscription(customer))["status"] == "terminated"
    events = await apple.events()
    assert topics(events) == ["subscriptionTerminated"]
    assert events[0][1]["reason"] == "REFUNDED"
    [note] = await apple.notifications()
    assert note["notificationUUID"] == done["notification"]["notificationUuid"]
    assert (note["notificationType"], note["source"], note["status"]) == (
        "REFUND",
        "history",
        "applied",
    )
    assert note["appliedAt"] is not None
    assert note["originalTransactionId"] == bought["originalTransactionId"]
    metrics = (await apple.shop.client.get("/metrics")).text
    for counted in (
        'storekit_reconcile_passes_total{outcome="completed"}',
        "storekit_notifications_recovered_total",
        "storekit_safety_net_corrected_total",
        "storekit_reconcile_apple_errors_total",
        "storekit_reconcile_pass_duration_seconds_count",
    ):
        assert counted in metrics, counted


async def test_what_was_received_is_not_stored_twice(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "renew")
    missed = await apple.act(
        bought["transactionId"], "auto-renew", expect=None, enabled=False, **MISSED
    )
    assert await apple.worker.drain() == 1  # the renewal, posted
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert record["recovered"] == 1
    listed = await apple.notifications()
    assert [(n["notificationType"], n["source"]) for n in listed] == [
        ("DID_CHANGE_RENEWAL_STATUS", "history"),
        ("DID_RENEW", "posted"),
    ]
    assert listed[0]["notificationUUID"] == missed["notification"]["notificationUuid"]
    assert topics(await apple.events()) == ["subscriptionRenewed", "subscriptionAutoRenewChanged"]
    assert (await apple.subscription(customer))["autoRenew"] is False
    again = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (again["outcome"], again["recovered"]) == ("completed", 0)
    assert await apple.stored() == 2


async def test_the_cursor_moves_to_the_end_of_the_window(apple: Apple, clock: MovableClock) -> None:
    await apple.subscribed()
    await run_pass(apple.shop.context.db, apple.worker, clock)
    read = await cursor(apple.shop.context.db, apple.shop.publisher.id)
    assert read is not None
    assert read["checked_until"] == clock.now() and read["window_start"] is None
    assert read["page_token"] is None and read["last_error"] is None


async def test_a_pass_stopped_by_the_rate_limit_is_resumed_at_its_page(
    apple: Apple, clock: MovableClock
) -> None:
    bought, customer = await apple.subscribed()
    for enabled in [False, True] * 12 + [False]:  # 25 notifications: two pages of history
        await apple.act(
            bought["transactionId"], "auto-renew", expect=None, enabled=enabled, **MISSED
        )
    limit = f"/sim/apps/{apple.shop.bundle_id}/rate-limit"
    budget = {"budget": 1, "windowSeconds": 3600, "endpoint": "notification_history"}
    assert (await apple.shop.sim.put(limit, json=budget)).status_code == 200
    try:
        first = await run_pass(apple.shop.context.db, apple.worker, clock)
    finally:
        await apple.shop.sim.delete(limit)
    assert (first["outcome"], first["recovered"]) == ("stopped", 20)
    assert "4290000" in first["detail"] or "429" in first["detail"]
    stopped = await cursor(apple.shop.context.db, apple.shop.publisher.id)
    assert stopped is not None and stopped["page_token"] is not None
    assert stopped["checked_until"] is None and "429" in stopped["last_error"]
    paused = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (paused["outcome"], paused["recovered"]) == ("stopped", 0)
    assert "asked to wait" in paused["detail"], "Apple's Retry-After holds: not asked again"
    clock.advance(3600)  # past Apple's Retry-After (the end of its hour)
    second = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (second["outcome"], second["recovered"]) == ("completed", 5)
    assert await apple.stored() == 25
    done = await cursor(apple.shop.context.db, apple.shop.publisher.id)
    assert done is not None and done["page_token"] is None and done["checked_until"] is not None
    assert (await apple.subscription(customer))["autoRenew"] is False
    changed = topics(await apple.events())
    assert changed and set(changed) == {"subscriptionAutoRenewChanged"}


async def test_a_5xx_is_retried_within_the_pass(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund", expect=None, **MISSED)
    await apple.shop.fault("server_error", times=2)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["recovered"], record["apple_errors"]) == ("completed", 1, 2)
    assert (await apple.access(customer))["accessGranted"] is False


async def test_a_short_429_is_waited_for(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund", expect=None, **MISSED)
    await apple.shop.fault("rate_limit", times=1, retryAfterMs=200)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["recovered"], record["apple_errors"]) == ("completed", 1, 1)
    assert (await apple.access(customer))["accessGranted"] is False


async def test_an_app_apple_refuses_does_not_hold_up_the_others(
    apple: Apple, clock: MovableClock
) -> None:
    other = await add_app(apple.shop)
    body = {**apple.shop.bodies[other], "privateKey": p256_pem()}  # a key Apple does not know
    url = f"/admin/publishers/{apple.shop.publisher.id}/storekit2/apps/{other}"
    assert (await apple.shop.client.put(url, json=body, headers=ADMIN)).status_code == 200
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund", expect=None, **MISSED)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["recovered"]) == ("stopped", 1)
    assert other in record["detail"] and "401" in record["detail"]
    assert (await apple.access(customer))["accessGranted"] is False
    cursors = {
        row["bundle_id"]: row
        for row in await apple.shop.context.db.fetch(
            "SELECT * FROM notification_history_cursors WHERE publisher_id = $1",
            apple.shop.publisher.id,
        )
    }
    assert cursors[apple.shop.bundle_id]["last_error"] is None
    assert cursors[other]["checked_until"] is None and "401" in cursors[other]["last_error"]


async def _cursors(apple: Apple) -> dict[str, dict[str, Any]]:
    rows = await apple.shop.context.db.fetch(
        "SELECT * FROM notification_history_cursors WHERE publisher_id = $1",
        apple.shop.publisher.id,
    )
    return {row["bundle_id"]: dict(row) for row in rows}


async def test_apple_failing_on_one_publishers_history_does_not_hold_up_the_next(
    apple: Apple, other_shop: Shop, clock: MovableClock
) -> None:
    db = apple.shop.context.db
    await apple.shop.fault("server_error", times=4)  # the first history's call and its retries
    record = await run_pass(db, apple.worker, clock)
    assert (record["outcome"], record["apple_errors"]) == ("stopped", 4)
    cursors = [await cursor(db, shop.publisher.id) for shop in (apple.shop, other_shop)]
    failed = [c for c in cursors if c is not None and c["checked_until"] is None]
    read = [c for c in cursors if c is not None and c["checked_until"] is not None]
    assert len(failed) == 1 and "500" in failed[0]["last_error"], "the first one asked"
    assert len(read) == 1 and read[0]["last_error"] is None, "the next one is read all the same"


async def test_a_history_a_stopped_pass_did_not_reach_is_read_first_by_the_next(
    apple: Apple, clock: MovableClock
) -> None:
    others = [await add_app(apple.shop) for _ in range(3)]
    await apple.shop.fault("server_error", times=12)  # three histories, each asked four times
    stopped = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (stopped["outcome"], stopped["apple_errors"]) == ("stopped", 12)
    assert "3 in a row" in stopped["detail"], "Apple seems down: the pass stops"
    cursors = await _cursors(apple)
    [unread] = [b for b in (apple.shop.bundle_id, *others) if b not in cursors]
    assert all("500" in c["last_error"] for c in cursors.values())
    await apple.shop.fault("server_error", times=4)  # the next pass's first history only
    again = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert again["apple_errors"] == 4
    cursors = await _cursors(apple)
    assert "500" in cursors[unread]["last_error"], "it was the first asked"
    assert all(c["checked_until"] is not None for b, c in cursors.items() if b != unread)
