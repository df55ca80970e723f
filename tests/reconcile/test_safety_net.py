"""The expiry safety net: a subscription still stored active whose access ended more than ten
minutes ago with no word from Apple since is read again from Apple and corrected, with the
webhooks a notification would have caused: extended when Apple renewed it, expired, or ended."""

from __future__ import annotations

from datetime import datetime

from app.clock import MovableClock
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
    assert (stopped["outcome"], stopped["checked"], stopped["apple_errors"]) == ("stopped", 0, 4)
    assert "500" in stopped["detail"]
    record = await run_pass(apple.shop.context.db, apple.worker, clock)
    assert (record["outcome"], record["corrected"]) == ("completed", 1)
    assert topics(await apple.events()) == ["subscriptionRenewed"]
