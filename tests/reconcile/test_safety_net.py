"""The expiry safety net: a subscription still stored active whose access ended more than ten
minutes ago with no word from Apple since is read again from Apple and corrected, with the
webhooks a notification would have caused: extended when Apple renewed it, expired, or ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.clock import MovableClock
from app.reconcile import service
from tests.helpers.api import new_customer
from tests.helpers.appstore import Apple, topics
from tests.helpers.reconcile import run_pass

DAY = 86_400.0


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _past_expiry(apple: Apple, clock: MovableClock, customer: int, minutes: float) -> None:
    """The service's clock `minutes` past the subscription's stored expiry."""
    expires = _at((await apple.subscription(customer))["expiresAt"])
    clock.advance((expires - clock.now()).total_seconds() + minutes * 60)


async def test_a_renewal_apple_never_notified_extends_the_subscription(
    apple: Apple, clock: MovableClock
) -> None:
    bought, customer = await apple.subscribed()
    before = await apple.subscription(customer)
    renewed = await apple.shop.act(bought["transactionId"], "renew")
    assert renewed.get("notification") is None, "no notification at all, not even a failed one"
    await _past_expiry(apple, clock, customer, 11)
    assert (await apple.access(customer))["accessGranted"] is False, "lapsed by the clock"
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["checked"], record["corrected"], record["recovered"]) == (1, 1, 0)
    after = await apple.subscription(customer)
    assert after["status"] == "active" and after["subscriptionId"] == before["subscriptionId"]
    assert _at(after["expiresAt"]) > _at(before["expiresAt"]) > clock.now().replace(year=2000)
    assert (await apple.access(customer))["accessGranted"] is True
    events = await apple.events()
    assert topics(events) == ["subscriptionRenewed"]
    assert _at(events[0][1]["expirationDate"]) == _at(after["expiresAt"])
    again = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert again["checked"] == 0, "Apple's word is newer than the new expiry: nothing to ask"


async def test_an_expiry_apple_never_notified_expires_it(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.shop.act(bought["transactionId"], "expire")
    await _past_expiry(apple, clock, customer, 11)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["checked"], record["corrected"]) == (1, 1)
    assert (await apple.subscription(customer))["status"] == "expired"
    assert topics(await apple.events()) == ["subscriptionExpired"]


async def test_a_refund_apple_never_notified_ends_it(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.shop.act(bought["transactionId"], "refund")
    await _past_expiry(apple, clock, customer, 11)
    await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (await apple.subscription(customer))["status"] == "terminated"
    events = await apple.events()
    assert topics(events) == ["subscriptionTerminated"]
    assert events[0][1]["reason"] == "REFUNDED"


async def test_ten_minutes_pass_before_apple_is_asked(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await apple.shop.act(bought["transactionId"], "renew")
    await _past_expiry(apple, clock, customer, 9)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert record["checked"] == 0
    assert topics(await apple.events()) == []


async def test_a_subscription_apple_told_about_is_not_read_again(
    apple: Apple, clock: MovableClock
) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "expire")
    assert await apple.worker.drain() == 1
    await _past_expiry(apple, clock, customer, 60)
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert record["checked"] == 0
    assert topics(await apple.events()) == ["subscriptionExpired"]


async def test_one_apple_cannot_tell_about_is_asked_once(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    await _past_expiry(apple, clock, customer, 11)
    await apple.shop.fault("not_found", transactionId=bought["originalTransactionId"])
    first = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (first["checked"], first["corrected"], first["outcome"]) == (1, 0, "completed")
    second = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert second["checked"] == 0
    [fault] = (await apple.shop.sim.get("/sim/faults")).json()
    assert fault["hits"] == 1, "asked once"
    assert topics(await apple.events()) == [], "nothing changed: it lapsed by the clock alone"


async def test_apple_down_stops_the_pass_and_the_next_one_corrects(
    apple: Apple, clock: MovableClock
) -> None:
    bought, customer = await apple.subscribed()
    await apple.shop.act(bought["transactionId"], "renew")
    await _past_expiry(apple, clock, customer, 11)
    await apple.shop.fault("server_error")
    stopped = await run_pass(apple.shop.context.db, apple.worker, clock)
    await apple.shop.sim.delete("/sim/faults")
    # the history's call and the subscription's, each with its three retries
    assert (stopped["outcome"], stopped["checked"], stopped["apple_errors"]) == ("stopped", 0, 8)
    assert "500" in stopped["detail"]
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["corrected"]) == ("completed", 1)
    assert topics(await apple.events()) == ["subscriptionRenewed"]


async def _fault_hits(apple: Apple) -> list[int]:
    return [fault["hits"] for fault in (await apple.shop.sim.get("/sim/faults")).json()]


async def _lapsed_purchase(apple: Apple, customer: int, action: str) -> dict[str, Any]:
    """A purchase of the customer's, synchronized, then renewed or expired at Apple unnotified."""
    bought = await apple.shop.purchase("auto-renewable", "monthly")
    await apple.shop.accepted(customer, bought["transactionId"])
    assert await apple.worker.drain() == 1
    await apple.shop.act(bought["transactionId"], action)
    return bought


async def test_a_subscription_apple_keeps_failing_on_does_not_hold_up_the_later_ones(
    apple: Apple, clock: MovableClock
) -> None:
    failing_customer, renewed_customer = apple.shop.customers[:2]
    failing = await _lapsed_purchase(apple, failing_customer, "expire")
    await _lapsed_purchase(apple, renewed_customer, "renew")  # expires after the failing one
    await _past_expiry(apple, clock, renewed_customer, 11)
    original = str(failing["originalTransactionId"])
    await apple.shop.fault("server_error", transactionId=original)  # for as long as it likes
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["checked"], record["corrected"]) == ("stopped", 1, 1)
    assert await _fault_hits(apple) == [4], "asked once and retried three times, then skipped"
    assert original in record["detail"] and "500" in record["detail"]
    assert (await apple.access(renewed_customer))["accessGranted"] is True
    await apple.shop.sim.delete("/sim/faults")
    again = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (again["outcome"], again["checked"], again["corrected"]) == ("completed", 1, 1)
    assert (await apple.subscription(failing_customer))["status"] == "expired"


async def test_subscriptions_apple_keeps_failing_on_move_behind_the_others(
    apple: Apple, clock: MovableClock
) -> None:
    shop = apple.shop
    failing = [await _lapsed_purchase(apple, customer, "expire") for customer in shop.customers]
    last_customer = await new_customer(shop.client, shop.publisher)
    await _lapsed_purchase(apple, last_customer, "renew")  # the latest expiry of the four
    await _past_expiry(apple, clock, last_customer, 11)
    for bought in failing:
        await shop.fault("server_error", transactionId=bought["originalTransactionId"])
    first = await run_pass(shop.context.db, apple.worker, clock)
    assert (first["outcome"], first["checked"]) == ("stopped", 0)
    assert "3 in a row" in first["detail"], "Apple seems down: the pass stops"
    assert await _fault_hits(apple) == [4, 4, 4]
    assert (await apple.access(last_customer))["accessGranted"] is False, "not reached"
    second = await run_pass(shop.context.db, apple.worker, clock)
    assert (second["checked"], second["corrected"]) == (1, 1), "the three failing ones go last"
    assert "3 in a row" in second["detail"]
    assert await _fault_hits(apple) == [8, 8, 8], "and are asked again after the others"
    assert (await apple.access(last_customer))["accessGranted"] is True


async def test_lapsed_subscriptions_with_no_app_to_ask_are_not_candidates(
    apple: Apple, clock: MovableClock
) -> None:
    _, customer = await apple.subscribed()
    await _past_expiry(apple, clock, customer, 11)
    db = apple.shop.context.db
    assert len(await service.lapsed(db, clock.now(), None)) == 1
    await db.execute(
        "UPDATE storekit2_integrations SET active = false WHERE publisher_id = $1",
        apple.shop.publisher.id,
    )
    assert await service.lapsed(db, clock.now(), None) == [], "its integration is off"
