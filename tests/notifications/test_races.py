"""docs/api.md §6: whichever of a sync and a notification is applied last, what is held is the newer word
from Apple. The interleaving is forced, not timed: the sync reads Apple, then a notification is
posted and applied, then the sync finalizes on what it read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from app.apple import transactions
from app.apple.gateway import AppleApp, AppleGateway
from app.apple.transactions import ApplePurchase, fetch_purchase
from tests.helpers.appstore import Apple, wall_clock_past

Check = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


def _ended(result: dict[str, Any], held: dict[str, Any], access: dict[str, Any]) -> None:
    assert held["status"] == "terminated" and access["accessGranted"] is False
    assert (result["result"], result["accessGranted"]) == ("PURCHASE_REVOKED", False)


def _expired(result: dict[str, Any], held: dict[str, Any], access: dict[str, Any]) -> None:
    assert held["status"] == "expired" and access["accessGranted"] is False
    assert (result["result"], result["accessGranted"]) == ("RECEIVED_EXPIRED_PURCHASE", False)


def _renewed(result: dict[str, Any], held: dict[str, Any], access: dict[str, Any]) -> None:
    assert held["status"] == "active" and access["accessGranted"] is True
    assert result["accessGranted"] is True


def _auto_renew_off(result: dict[str, Any], held: dict[str, Any], access: dict[str, Any]) -> None:
    assert held["autoRenew"] is False and access["accessGranted"] is True
    assert result["accessGranted"] is True


NOTICES: dict[str, tuple[str, dict[str, Any], Check]] = {
    "REFUND": ("refund", {}, _ended),
    "REVOKE": ("revoke", {}, _ended),
    "DID_RENEW": ("renew", {}, _renewed),
    "EXPIRED": ("expire", {}, _expired),
    "DID_CHANGE_RENEWAL_STATUS": ("auto-renew", {"enabled": False}, _auto_renew_off),
}


def _millis(moment: datetime | None) -> int:
    assert moment is not None
    return int(moment.timestamp() * 1000)


def _read_then(apple: Apple, action: str, body: dict[str, Any]) -> Callable[..., Awaitable[Any]]:
    """Apple's answer to the sync, then a newer notification posted and applied before the sync
    goes on to finalize."""

    async def read(gateway: AppleGateway, app: AppleApp, tid: str) -> ApplePurchase:
        purchase = await fetch_purchase(gateway, app, tid)
        await wall_clock_past(_millis(purchase.signed_at))  # the notification is signed later
        await apple.act(tid, action, **body)
        assert await apple.worker.drain() == 1, "the notification is applied first"
        return purchase

    return read


@pytest.mark.parametrize("claimant", ["the owner", "another customer"])
@pytest.mark.parametrize("notice", sorted(NOTICES))
async def test_a_notification_applied_during_a_sync_wins(
    apple: Apple, monkeypatch: pytest.MonkeyPatch, notice: str, claimant: str
) -> None:
    bought, owner = await apple.subscribed()
    before = await apple.subscription(owner)
    action, body, check = NOTICES[notice]
    customer = owner if claimant == "the owner" else apple.shop.customers[1]
    monkeypatch.setattr(transactions, "fetch_purchase", _read_then(apple, action, body))
    sync_id = await apple.shop.accepted(customer, bought["transactionId"])
    assert await apple.worker.drain() == 1
    monkeypatch.undo()
    result = await apple.shop.poll(sync_id)
    moved = claimant != "the owner" and result["result"] == "PURCHASE_OWNERSHIP_TRANSFERRED"
    held = await apple.subscription(customer if moved else owner)
    check(result, held, await apple.access(customer if moved else owner))
    if notice == "DID_RENEW":
        assert held["expiresAt"] > before["expiresAt"], "the renewal's expiry, not the sync's"
    assert (await apple.notifications())[0]["status"] == "applied"


async def test_an_older_notification_after_a_sync_changes_nothing(apple: Apple) -> None:
    """The reverse order: the sync holds Apple's newer word; a notification signed before it, and
    applied after it, is ignored."""
    bought, customer = await apple.subscribed()
    tid = bought["transactionId"]
    await apple.notify_to(None)  # Apple's post fails: it arrives late
    late = (await apple.act(tid, "auto-renew", expect=None, enabled=False))["notification"]
    await apple.notify_to(apple.url())
    await apple.shop.act(tid, "auto-renew", enabled=True)  # and back on, with no notification
    await apple.shop.accepted(customer, tid)  # the sync reads Apple now: auto-renew on
    assert await apple.worker.drain() == 1
    await apple.resend(late["notificationUuid"])
    assert await apple.worker.drain() == 1
    assert (await apple.subscription(customer))["autoRenew"] is True
    assert (await apple.notifications())[0]["status"] == "ignored"
