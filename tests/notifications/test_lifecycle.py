"""Every lifecycle action of the simulator posts a real signed notification to the running
service; the worker applies it, and the subscription, the entitlements and the webhooks follow."""

from __future__ import annotations

import pytest

from app.clock import MovableClock
from tests.helpers.appstore import Apple, expires, topics
from tests.helpers.shop import LIFETIME_OFFER


async def test_a_renewal_extends_the_subscription(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    renewed = await apple.act(bought["transactionId"], "renew")
    assert (await apple.notifications())[0]["status"] == "pending"
    assert await apple.worker.drain() == 1
    subscription = await apple.subscription(customer)
    assert subscription["status"] == "active"
    assert subscription["latestTransactionId"] == renewed["transactionId"]
    assert expires(subscription) == renewed["expiresDate"] // 1000 > bought["expiresDate"] // 1000
    assert await apple.access(customer) == {
        "accessGranted": True,
        "expiresAt": renewed["expiresDate"] // 1000,
    }
    events = await apple.events()
    assert topics(events) == ["subscriptionRenewed"]
    renewal = events[0][1]
    assert renewal["subscriptionId"] == subscription["subscriptionId"]
    assert renewal["customerId"] == customer
    assert renewal["active"] is True
    assert renewal["expirationDate"].startswith(subscription["expiresAt"][:19])
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["subtype"], note["status"]) == (
        "DID_RENEW",
        None,
        "applied",
    )
    assert note["outcome"].startswith("renewed until")
    assert note["subscriptionId"] == subscription["subscriptionId"]


@pytest.mark.parametrize(
    "subtype", ["VOLUNTARY", "BILLING_RETRY", "PRICE_INCREASE", "PRODUCT_NOT_FOR_SALE"]
)
async def test_an_expiry_ends_access(apple: Apple, subtype: str) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "expire", subtype=subtype)
    assert await apple.worker.drain() == 1
    subscription = await apple.subscription(customer)
    assert subscription["status"] == "expired"
    assert subscription["autoRenew"] is False
    assert (await apple.access(customer))["accessGranted"] is False
    events = await apple.events()
    assert topics(events) == ["subscriptionExpired"]
    assert events[0][1]["active"] is False
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["subtype"]) == ("EXPIRED", subtype)
    assert note["outcome"] == "expired (subscriptionExpired)"


@pytest.mark.parametrize(
    ("action", "notification_type", "reason"),
    [("refund", "REFUND", "REFUNDED"), ("revoke", "REVOKE", "REVOKED")],
)
async def test_a_refund_or_revocation_terminates(
    apple: Apple, action: str, notification_type: str, reason: str
) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], action)
    assert await apple.worker.drain() == 1
    subscription = await apple.subscription(customer)
    assert subscription["status"] == "terminated"
    assert (await apple.access(customer))["accessGranted"] is False
    events = await apple.events()
    assert topics(events) == ["subscriptionTerminated"]
    assert events[0][1]["reason"] == reason
    assert events[0][1]["subscriptionId"] == subscription["subscriptionId"]
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["status"]) == (notification_type, "applied")
    assert note["outcome"] == f"terminated: {reason} (subscriptionTerminated)"


async def test_a_refunded_lifetime_purchase_is_terminated(apple: Apple) -> None:
    bought, customer = await apple.subscribed("non-consumable", "lifetime")
    assert (await apple.access(customer, LIFETIME_OFFER))["accessGranted"] is True
    await apple.act(bought["transactionId"], "refund")
    assert await apple.worker.drain() == 1
    assert (await apple.access(customer, LIFETIME_OFFER))["accessGranted"] is False
    assert [(t, d["reason"]) for t, d in await apple.events()] == [
        ("subscriptionTerminated", "REFUNDED")
    ]


async def test_auto_renew_off_and_on(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    for enabled in (False, True):
        await apple.act(bought["transactionId"], "auto-renew", enabled=enabled)
        assert await apple.worker.drain() == 1
        assert (await apple.subscription(customer))["autoRenew"] is enabled
    assert (await apple.access(customer))["accessGranted"] is True
    events = await apple.events()
    assert topics(events) == ["subscriptionAutoRenewChanged"] * 2
    assert [data["autoRenew"] for _, data in events] == [False, True]
    assert all(data["active"] is True for _, data in events)
    outcomes = [n["outcome"] for n in await apple.notifications()]
    assert outcomes == [
        "autoRenew on (subscriptionAutoRenewChanged)",
        "autoRenew off (subscriptionAutoRenewChanged)",
    ]


async def test_billing_retry_ends_access_until_recovery(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "billing-retry")
    assert await apple.worker.drain() == 1
    assert (await apple.access(customer))["accessGranted"] is False
    assert (await apple.subscription(customer))["status"] == "expired"
    recovered = await apple.act(bought["transactionId"], "recover")
    assert await apple.worker.drain() == 1
    assert await apple.access(customer) == {
        "accessGranted": True,
        "expiresAt": recovered["expiresDate"] // 1000,
    }
    assert topics(await apple.events()) == ["subscriptionExpired", "subscriptionRenewed"]
    latest, first = await apple.notifications()
    assert (first["notificationType"], first["subtype"]) == ("DID_FAIL_TO_RENEW", None)
    assert (latest["notificationType"], latest["subtype"]) == ("DID_RENEW", "BILLING_RECOVERY")
    assert latest["outcome"].startswith("reinstated until")


async def test_a_grace_period_keeps_access_until_it_ends(apple: Apple, clock: MovableClock) -> None:
    bought, customer = await apple.subscribed()
    in_grace = await apple.act(bought["transactionId"], "grace-period", durationSeconds=3600)
    assert await apple.worker.drain() == 1
    assert await apple.access(customer) == {  # docs/api.md §4: access until gracePeriodExpiresDate
        "accessGranted": True,
        "expiresAt": in_grace["gracePeriodExpiresDate"] // 1000,
    }
    assert (await apple.subscription(customer))["status"] == "active"
    assert await apple.events() == []
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["subtype"]) == ("DID_FAIL_TO_RENEW", "GRACE_PERIOD")
    assert note["outcome"].startswith("in billing grace period until")
    clock.advance(2 * 3600)  # past the grace period: the access rule ends it by itself
    assert (await apple.access(customer))["accessGranted"] is False
    await apple.act(bought["transactionId"], "grace-period-expired")
    assert await apple.worker.drain() == 1
    assert (await apple.subscription(customer))["status"] == "expired"
    assert topics(await apple.events()) == ["subscriptionExpired"]
    assert (await apple.notifications())[0]["notificationType"] == "GRACE_PERIOD_EXPIRED"


async def test_notifications_applied_together_end_in_the_newest_state(apple: Apple) -> None:
    """Workers apply notifications of one purchase concurrently, in any order: whichever runs
    first, the newest state wins and the change is announced once."""
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "grace-period")
    await apple.act(bought["transactionId"], "grace-period-expired")
    assert await apple.worker.drain() == 2
    assert (await apple.access(customer))["accessGranted"] is False
    assert (await apple.subscription(customer))["status"] == "expired"
    assert topics(await apple.events()) == ["subscriptionExpired"]


async def test_a_reversed_refund_reinstates_the_subscription(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "refund")
    assert await apple.worker.drain() == 1
    ended = await apple.subscription(customer)
    await apple.act(bought["transactionId"], "refund-reversed")
    assert await apple.worker.drain() == 1
    listed = await apple.shop.subscriptions(customerId=customer)
    assert [s["status"] for s in listed["items"]] == ["terminated", "active"]
    reinstated = listed["items"][1]
    assert reinstated["subscriptionId"] != ended["subscriptionId"]
    assert reinstated["originalTransactionId"] == bought["originalTransactionId"]
    assert await apple.access(customer) == {"accessGranted": True, "expiresAt": expires(ended)}
    events = await apple.events()
    assert topics(events) == ["subscriptionTerminated", "subscriptionCreated"]
    assert events[1][1]["subscriptionId"] == reinstated["subscriptionId"]
    assert events[1][1]["active"] is True
    note = (await apple.notifications())[0]
    assert note["notificationType"] == "REFUND_REVERSED"
    assert note["outcome"] == (
        f"reinstated as subscription {reinstated['subscriptionId']} (subscriptionCreated)"
    )


async def test_a_resubscription_after_expiry_reinstates(apple: Apple) -> None:
    bought, customer = await apple.subscribed()
    await apple.act(bought["transactionId"], "expire")
    assert await apple.worker.drain() == 1
    resubscribed = await apple.act(bought["transactionId"], "renew")
    assert await apple.worker.drain() == 1
    assert await apple.access(customer) == {
        "accessGranted": True,
        "expiresAt": resubscribed["expiresDate"] // 1000,
    }
    assert topics(await apple.events()) == ["subscriptionExpired", "subscriptionRenewed"]
    latest = (await apple.notifications())[0]
    assert (latest["notificationType"], latest["subtype"]) == ("SUBSCRIBED", "RESUBSCRIBE")


@pytest.mark.parametrize(
    ("notification_type", "subtype"),
    [
        ("OFFER_REDEEMED", None),
        ("RENEWAL_EXTENDED", None),
        ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"),
        ("SUBSCRIBED", "INITIAL_BUY"),
    ],
)
async def test_a_notification_of_the_state_held_changes_nothing(
    apple: Apple, notification_type: str, subtype: str | None
) -> None:
    bought, customer = await apple.subscribed()
    before = await apple.subscription(customer)
    body = {"notificationType": notification_type, "subtype": subtype}
    answer = await apple.shop.sim.post(
        f"/sim/purchases/{bought['transactionId']}/notify", json=body
    )
    assert answer.json()["notification"]["statusCode"] == 200
    assert await apple.worker.drain() == 1
    assert await apple.events() == []
    after = await apple.subscription(customer)
    assert (after["status"], after["expiresAt"]) == (before["status"], before["expiresAt"])
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["status"]) == (notification_type, "applied")
    assert "no change: active until" in note["outcome"]


@pytest.mark.parametrize("notification_type", ["TEST", "PRICE_INCREASE", "CONSUMPTION_REQUEST"])
async def test_informational_notifications_are_stored_only(
    apple: Apple, notification_type: str
) -> None:
    bought, _ = await apple.subscribed()
    body = {"notificationType": notification_type}
    answer = await apple.shop.sim.post(
        f"/sim/purchases/{bought['transactionId']}/notify", json=body
    )
    assert answer.json()["notification"]["statusCode"] == 200
    assert await apple.worker.drain() == 0
    note = (await apple.notifications())[0]
    assert (note["notificationType"], note["status"]) == (notification_type, "stored")
    assert await apple.events() == []
