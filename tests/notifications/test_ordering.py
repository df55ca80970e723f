"""Out of order, early, or racing a sync: notifications are applied by `signedDate`, an older one
never undoes a newer state, and one about a purchase not yet registered waits for its sync."""

from __future__ import annotations

import pytest

from app.apple import transactions
from app.apple.gateway import AppleApp, AppleGateway
from app.apple.transactions import ApplePurchase, fetch_purchase
from tests.helpers.appstore import Apple, signed_date, topics, wall_clock_past
from tests.helpers.shop import MONTHLY_OFFER


async def test_an_older_notification_never_undoes_a_newer_state(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    await apple.notify_to(None)  # this one is held back: Apple will deliver it late
    late = (await apple.act(bought["transactionId"], "auto-renew", expect=None, enabled=False))[
        "notification"
    ]
    await wall_clock_past(signed_date(late))
    await apple.notify_to(apple.url())
    await apple.act(bought["transactionId"], "expire")
    assert await apple.worker.drain() == 1
    assert (await apple.subscription(customer))["status"] == "expired"
    resent = await apple.resend(late["notificationUuid"])
    assert resent["attempts"][-1]["statusCode"] == 200
    assert await apple.worker.drain() == 1
    subscription = await apple.subscription(customer)
    assert subscription["status"] == "expired", "the older 'active' state must not come back"
    assert (await apple.access(customer))["accessGranted"] is False
    assert topics(await apple.events()) == ["subscriptionExpired"]
    newest_first = await apple.notifications()
    assert newest_first[0]["notificationUUID"] == late["notificationUuid"]
    assert newest_first[0]["status"] == "ignored"
    assert newest_first[0]["outcome"].startswith("older than the state held")
    assert newest_first[1]["status"] == "applied"


async def test_a_notification_before_registration_waits_for_the_sync(apple: Apple) -> None:
    bought = await apple.shop.purchase()
    await apple.act(bought["transactionId"], "auto-renew", enabled=False)
    assert await apple.worker.drain() == 1
    waiting = (await apple.notifications())[0]
    assert (waiting["status"], waiting["outcome"]) == (
        "pending",
        "waiting for the purchase to be synchronized",
    )
    assert waiting["originalTransactionId"] == bought["originalTransactionId"]
    assert await apple.events() == []
    customer = apple.shop.customers[1]
    sync_id = await apple.shop.accepted(customer, bought["transactionId"])
    assert await apple.worker.drain() == 1
    assert (await apple.shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    applied = (await apple.notifications())[0]
    subscription = await apple.subscription(customer)
    assert (applied["status"], applied["subscriptionId"]) == (
        "applied",
        subscription["subscriptionId"],
    )
    assert subscription["autoRenew"] is False
    assert (await apple.access(customer))["accessGranted"] is True


async def test_a_refund_between_apples_answer_and_the_finalization(
    apple: Apple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync read Apple before the refund; the refund's notification lands before the sync
    finalizes, while the purchase has no subscription yet: the finalization applies it."""
    bought = await apple.shop.purchase()

    async def fetch_then_refund(
        gateway: AppleGateway, app: AppleApp, transaction_id: str
    ) -> ApplePurchase:
        purchase = await fetch_purchase(gateway, app, transaction_id)
        await apple.act(transaction_id, "refund")
        return purchase

    monkeypatch.setattr(transactions, "fetch_purchase", fetch_then_refund)
    customer = apple.shop.customers[0]
    sync_id = await apple.shop.accepted(customer, bought["transactionId"])
    assert await apple.worker.drain() == 2  # the sync, then the notification's job (a no-op)
    assert (await apple.shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
    subscription = await apple.subscription(customer)
    assert subscription["status"] == "terminated"
    assert (await apple.access(customer))["accessGranted"] is False
    events = await apple.events()
    assert [(t, d["reason"]) for t, d in events] == [("subscriptionTerminated", "REFUNDED")]
    assert events[0][1]["subscriptionId"] == subscription["subscriptionId"]
    assert (await apple.notifications())[0]["status"] == "applied"


async def test_a_notification_after_termination_is_ignored(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund")
    assert await apple.worker.drain() == 1
    await apple.act(bought["transactionId"], "auto-renew", enabled=False)
    assert await apple.worker.drain() == 1
    ended = await apple.subscription(customer)
    latest = (await apple.notifications())[0]
    assert (latest["status"], latest["outcome"]) == (
        "ignored",
        f"subscription {ended['subscriptionId']} is terminated (REFUNDED)",
    )
    assert topics(await apple.events()) == ["subscriptionTerminated"]


async def test_a_transferred_purchase_notifies_its_new_owner(apple: Apple) -> None:
    bought, first = await apple.subscribed()
    second = apple.shop.customers[1]
    await apple.shop.accepted(second, bought["transactionId"])
    assert await apple.worker.drain() == 1
    await apple.act(bought["transactionId"], "renew")
    assert await apple.worker.drain() == 1
    events = await apple.events()
    assert topics(events) == ["subscriptionRenewed"]
    assert events[0][1]["customerId"] == second
    assert (await apple.access(first))["accessGranted"] is False
    assert (await apple.access(second, MONTHLY_OFFER))["accessGranted"] is True


async def test_a_resync_after_a_newer_notification_still_refreshes(apple: Apple) -> None:
    """The sync's data is as of Apple's newest signature, renewal info included."""
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "auto-renew", enabled=False)
    assert await apple.worker.drain() == 1
    assert (await apple.subscription(customer))["autoRenew"] is False
    await apple.shop.act(bought["transactionId"], "auto-renew", enabled=True)  # no notification
    await apple.shop.accepted(customer, bought["transactionId"])
    assert await apple.worker.drain() == 1
    assert (await apple.subscription(customer))["autoRenew"] is True


def test_an_older_waiting_notification_is_in_the_state_its_sync_fetched() -> None:
    """Both timings of the test above, pinned down: a notification older than the state held is
    ignored when it arrives, and counts as applied when it waited for its purchase's sync."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from app.enums import NotificationStatus
    from app.subscriptions.changes import Notice, _older
    from app.subscriptions.ownership import new_subscription

    held = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    facts = ApplePurchase(
        "1", "1", "p", "Auto-Renewable Subscription", "Sandbox", None, None, False, held
    )
    subscription = new_subscription(1, 2, "S123456789_US", facts, held)
    subscription.id = 7
    note = Notice("DID_RENEW", held - timedelta(seconds=2), facts)
    arrived = _older(note, subscription)
    waited = _older(note, subscription, synced=True)
    assert arrived is not None
    assert arrived.status == NotificationStatus.IGNORED
    assert waited is not None
    assert waited.status == NotificationStatus.APPLIED
    assert _older(replace(note, signed_at=held), subscription, synced=True) is None
