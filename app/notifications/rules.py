"""What each notification type does to the purchase's current subscription (SPEC §6).

Every rule runs with the purchase's advisory lock held and the subscription row locked, after the
caller made sure the notification is not older than what the subscription holds. Apple's signed
state in the notification is the truth; the type decides how a change is announced:

- SUBSCRIBED, DID_RENEW, OFFER_REDEEMED, RENEWAL_EXTENDED, REFUND_REVERSED, DID_CHANGE_RENEWAL_PREF,
  DID_FAIL_TO_RENEW, GRACE_PERIOD_EXPIRED and EXPIRED (`follow`): the subscription takes Apple's
  state; access regained or extended emits `subscriptionRenewed`, access lost `subscriptionExpired`
  (DID_FAIL_TO_RENEW in a grace period keeps access, so it emits nothing). "Access" is the stored
  status, so a subscription that lapsed by the clock alone is announced expired when Apple says so.
- REFUND and REVOKE (`revoke`): the subscription is terminated, `subscriptionTerminated` with reason
  REFUNDED or REVOKED; a refund of an earlier period than the one held changes nothing.
- DID_CHANGE_RENEWAL_STATUS (`renewal_status`): `autoRenew` flips, `subscriptionAutoRenewChanged`.
  Only the customer's own change emits it; other types update `autoRenew` silently.
- REFUND_REVERSED after a refund or revocation ended the subscription (`reinstate`): a new
  subscription for the same customer and offer, `subscriptionCreated`. The terminated one stays
  terminated, as after a transfer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.apple.transactions import ApplePurchase
from app.models import Subscription
from app.notifications.models import APPLIED, IGNORED, AppleNotification
from app.purchases.outcome import grants_access, is_revoked
from app.purchases.ownership import refresh
from app.webhooks import payloads
from app.webhooks.events import emit
from app.webhooks.payloads import is_active, iso

GRACE_PERIOD_STATUS = 4
REINSTATABLE = ("REFUNDED", "REVOKED")


@dataclass(frozen=True)
class Result:
    status: str
    outcome: str
    subscription_id: int | None = None


@dataclass(frozen=True)
class Step:
    """One notification about to change one subscription."""

    session: AsyncSession
    note: AppleNotification
    subscription: Subscription
    facts: ApplePurchase
    now: datetime

    async def emit(self, topic: str, **extra: Any) -> None:
        data = payloads.subscription_event(self.subscription, self.now, **extra)
        await emit(self.session, self.subscription.publisher_id, topic, data, self.now)


Rule = Callable[[Step], Awaitable[str]]


def _later(new: datetime | None, old: datetime | None) -> bool:
    return new is not None and (old is None or new > old)


def _join(change: str, followed: str) -> str:
    return change if followed.startswith("no change") else f"{change}; {followed}"


def _unchanged(subscription: Subscription, now: datetime) -> str:
    if not is_active(subscription, now):
        return "no change: expired"
    if subscription.apple_status == GRACE_PERIOD_STATUS:
        return f"in billing grace period until {iso(subscription.grace_expires_at)}"
    until = iso(subscription.expires_at) if subscription.expires_at else "revoked"
    return f"no change: active until {until}"


async def follow(step: Step) -> str:
    """The subscription takes Apple's signed state; a change of access is announced."""
    subscription, now = step.subscription, step.now
    if is_revoked(step.facts):
        return await revoke(step)
    was_active, old_expiry = subscription.status == "active", subscription.expires_at
    refresh(subscription, step.facts, now)
    active = subscription.status == "active"
    if was_active and not active:
        await step.emit("subscriptionExpired")
        return "expired (subscriptionExpired)"
    if active and (not was_active or _later(subscription.expires_at, old_expiry)):
        await step.emit("subscriptionRenewed")
        verb = "renewed" if was_active else "reinstated"
        return f"{verb} until {iso(subscription.expires_at)} (subscriptionRenewed)"
    return _unchanged(subscription, now)


def _earlier_period(subscription: Subscription, facts: ApplePurchase) -> bool:
    """A refund of a renewal period that ended before the one the subscription holds."""
    held, refunded = subscription.expires_at, facts.expires_at
    return (
        facts.transaction_id != subscription.latest_transaction_id
        and held is not None
        and refunded is not None
        and refunded < held
    )


async def revoke(step: Step) -> str:
    """REFUND and REVOKE: the subscription ends, with the reason."""
    subscription, facts, now = step.subscription, step.facts, step.now
    if _earlier_period(subscription, facts):
        return f"no change: transaction {facts.transaction_id} of an earlier period was refunded"
    if not is_revoked(facts):
        return "no change: Apple's transaction is not revoked"
    reason = "REVOKED" if step.note.notification_type == "REVOKE" else "REFUNDED"
    refresh(subscription, facts, now)
    subscription.status, subscription.terminated_reason = "terminated", reason
    subscription.updated_at = now
    await step.session.flush()
    await step.emit("subscriptionTerminated", reason=reason)
    return f"terminated: {reason} (subscriptionTerminated)"


async def renewal_status(step: Step) -> str:
    """DID_CHANGE_RENEWAL_STATUS: the customer turned auto-renew on or off."""
    subscription = step.subscription
    was = subscription.auto_renew
    followed = await follow(step)
    if subscription.auto_renew == was or subscription.status == "terminated":
        return followed
    await step.emit("subscriptionAutoRenewChanged", autoRenew=subscription.auto_renew)
    state = "on" if subscription.auto_renew else "off"
    return _join(f"autoRenew {state} (subscriptionAutoRenewChanged)", followed)


async def renewal_pref(step: Step) -> str:
    """DID_CHANGE_RENEWAL_PREF: the product of the next renewal (an upgrade is a new period)."""
    followed = await follow(step)
    product = (step.note.renewal_info or {}).get("autoRenewProductId")
    return f"renews as {product}; {followed}" if product else followed


RULES: dict[str, Rule] = {
    "SUBSCRIBED": follow,
    "DID_RENEW": follow,
    "OFFER_REDEEMED": follow,
    "RENEWAL_EXTENDED": follow,
    "REFUND_REVERSED": follow,
    "DID_FAIL_TO_RENEW": follow,
    "GRACE_PERIOD_EXPIRED": follow,
    "EXPIRED": follow,
    "DID_CHANGE_RENEWAL_PREF": renewal_pref,
    "DID_CHANGE_RENEWAL_STATUS": renewal_status,
    "REFUND": revoke,
    "REVOKE": revoke,
}


def _reinstated(ended: Subscription, facts: ApplePurchase, now: datetime) -> Subscription:
    subscription = Subscription(
        publisher_id=ended.publisher_id,
        customer_id=ended.customer_id,
        offer_id=ended.offer_id,
        product_type=facts.product_type,
        product_id=facts.product_id,
        original_transaction_id=facts.original_transaction_id,
        environment=facts.environment,
        created_at=now,
    )
    refresh(subscription, facts, now)
    return subscription


async def reinstate(
    session: AsyncSession, ended: Subscription, facts: ApplePurchase, now: datetime
) -> Result:
    """REFUND_REVERSED once the refund ended the subscription: a new one, same customer and offer."""
    if ended.terminated_reason not in REINSTATABLE:
        return Result(
            IGNORED, f"subscription {ended.id} ended: {ended.terminated_reason}", ended.id
        )
    if not grants_access(facts, now):
        return Result(IGNORED, "refund reversed, but the purchase grants no access now", ended.id)
    subscription = _reinstated(ended, facts, now)
    session.add(subscription)
    await session.flush()
    data = payloads.subscription_event(subscription, now)
    await emit(session, subscription.publisher_id, "subscriptionCreated", data, now)
    outcome = f"reinstated as subscription {subscription.id} (subscriptionCreated)"
    return Result(APPLIED, outcome, subscription.id)
