"""What Apple's word about a purchase does to its subscription, whenever it arrives: a notification
Apple posted, one recovered from its history, or a status read again by the reconciliation
(`apply_state`: followed as a notification would be, `STATE` naming it in the rules).

Every rule runs with the purchase's lock held and its current subscription locked, after making
sure Apple's word is not older than what the subscription holds. Apple's signed state is the
truth; the notification's type decides how a change is announced:

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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.apple.transactions import ApplePurchase
from app.db import Executor
from app.enums import EndReason, NotificationStatus, SubscriptionStatus, Topic
from app.subscriptions import repository
from app.subscriptions.access import grants_access, is_active, is_revoked
from app.subscriptions.events import Event, iso, subscription_event
from app.subscriptions.model import Subscription
from app.subscriptions.ownership import new_subscription, refresh

IN_GRACE = 4
STATE = "STATUS"  # not a notification: Apple's state read again by the reconciliation
REINSTATABLE = (EndReason.REFUNDED, EndReason.REVOKED)
WAITING = "waiting for the purchase to be synchronized"


@dataclass(frozen=True)
class Notice:
    """Apple's word about a purchase: the notification type, when Apple signed it, the verified
    facts, and the product of the next renewal (DID_CHANGE_RENEWAL_PREF)."""

    kind: str
    signed_at: datetime
    facts: ApplePurchase
    renewal_product: str | None = None


@dataclass
class Change:
    """What a notice did: the notification's new status, why, and the events it makes."""

    status: NotificationStatus
    outcome: str
    subscription_id: int | None = None
    events: list[Event] = field(default_factory=list)


@dataclass
class Step:
    """One notice about to change one subscription; its events in the order emitted."""

    notice: Notice
    subscription: Subscription
    now: datetime
    events: list[Event] = field(default_factory=list)

    def emit(self, topic: Topic, **extra: Any) -> None:
        self.events.append(subscription_event(topic, self.subscription, self.now, **extra))


Rule = Callable[[Step], str]


def _later(new: datetime | None, old: datetime | None) -> bool:
    return new is not None and (old is None or new > old)


def _unchanged(subscription: Subscription, now: datetime) -> str:
    if not is_active(subscription, now):
        return "no change: expired"
    if subscription.apple_status == IN_GRACE:
        return f"in billing grace period until {iso(subscription.grace_expires_at)}"
    until = iso(subscription.expires_at) if subscription.expires_at else "revoked"
    return f"no change: active until {until}"


def follow(step: Step) -> str:
    """The subscription takes Apple's signed state; a change of access is announced."""
    subscription, now = step.subscription, step.now
    if is_revoked(step.notice.facts):
        return revoke(step)
    was_active = subscription.status == SubscriptionStatus.ACTIVE
    old_expiry = subscription.expires_at
    refresh(subscription, step.notice.facts, now)
    active = subscription.status == SubscriptionStatus.ACTIVE
    if was_active and not active:
        step.emit(Topic.SUBSCRIPTION_EXPIRED)
        return "expired (subscriptionExpired)"
    if active and (not was_active or _later(subscription.expires_at, old_expiry)):
        step.emit(Topic.SUBSCRIPTION_RENEWED)
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


def revoke(step: Step) -> str:
    """REFUND and REVOKE: the subscription ends, with the reason."""
    subscription, facts, now = step.subscription, step.notice.facts, step.now
    if _earlier_period(subscription, facts):
        return f"no change: transaction {facts.transaction_id} of an earlier period was refunded"
    if not is_revoked(facts):
        return "no change: Apple's transaction is not revoked"
    reason = EndReason.REVOKED if step.notice.kind == "REVOKE" else EndReason.REFUNDED
    refresh(subscription, facts, now)
    subscription.status, subscription.terminated_reason = SubscriptionStatus.TERMINATED, reason
    subscription.updated_at = now
    step.emit(Topic.SUBSCRIPTION_TERMINATED, reason=reason)
    return f"terminated: {reason} (subscriptionTerminated)"


def renewal_status(step: Step) -> str:
    """DID_CHANGE_RENEWAL_STATUS: the customer turned auto-renew on or off."""
    subscription = step.subscription
    was = subscription.auto_renew
    followed = follow(step)
    if subscription.auto_renew == was or subscription.status == SubscriptionStatus.TERMINATED:
        return followed
    step.emit(Topic.SUBSCRIPTION_AUTO_RENEW_CHANGED, autoRenew=subscription.auto_renew)
    change = (
        f"autoRenew {'on' if subscription.auto_renew else 'off'} (subscriptionAutoRenewChanged)"
    )
    return change if followed.startswith("no change") else f"{change}; {followed}"


def renewal_pref(step: Step) -> str:
    """DID_CHANGE_RENEWAL_PREF: the product of the next renewal (an upgrade is a new period)."""
    followed = follow(step)
    product = step.notice.renewal_product
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
    STATE: follow,  # a revoked state is a refund (`revoke` names REVOKE only for REVOKE)
}


def is_actionable(notification_type: str, has_purchase: bool) -> bool:
    """Types with a rule change subscriptions; TEST and the informational types are stored only.
    `has_purchase`: the notification carries a signed transaction with both ids."""
    return has_purchase and notification_type in RULES and notification_type != STATE


def _older(notice: Notice, subscription: Subscription, synced: bool = False) -> Change | None:
    """None when the notice is not older than the state held. A notification that waited for its
    purchase's sync, which fetched a newer state from Apple, is in that state already."""
    held = subscription.apple_signed_at
    if held is None or notice.signed_at >= held:
        return None
    if synced:
        outcome = f"already in the state the sync fetched from Apple (signed {iso(held)})"
        return Change(NotificationStatus.APPLIED, outcome, subscription.id)
    outcome = f"older than the state held (signed {iso(held)})"
    return Change(NotificationStatus.IGNORED, outcome, subscription.id)


async def reinstate(db: Executor, ended: Subscription, notice: Notice, now: datetime) -> Change:
    """REFUND_REVERSED once the refund ended the subscription: a new one, same customer and offer."""
    if ended.terminated_reason not in REINSTATABLE:
        outcome = f"subscription {ended.id} ended: {ended.terminated_reason}"
        return Change(NotificationStatus.IGNORED, outcome, ended.id)
    if not grants_access(notice.facts, now):
        outcome = "refund reversed, but the purchase grants no access now"
        return Change(NotificationStatus.IGNORED, outcome, ended.id)
    created = new_subscription(
        ended.publisher_id, ended.customer_id, ended.offer_id, notice.facts, now
    )
    await repository.insert(db, created)
    event = subscription_event(Topic.SUBSCRIPTION_CREATED, created, now)
    outcome = f"reinstated as subscription {created.id} (subscriptionCreated)"
    return Change(NotificationStatus.APPLIED, outcome, created.id, [event])


async def _after_the_end(
    db: Executor, ended: Subscription | None, notice: Notice, now: datetime
) -> Change:
    """The purchase's subscriptions all ended (or it never had one: wait for its sync)."""
    if ended is None:
        return Change(NotificationStatus.PENDING, WAITING)
    older = _older(notice, ended)
    if older is not None:
        return older
    if notice.kind == "REFUND_REVERSED":
        return await reinstate(db, ended, notice, now)
    outcome = f"subscription {ended.id} is terminated ({ended.terminated_reason})"
    return Change(NotificationStatus.IGNORED, outcome, ended.id)


async def apply_notice(
    db: Executor, publisher_id: int, notice: Notice, now: datetime, *, synced: bool = False
) -> Change:
    """Apply Apple's word to the purchase's subscription; the purchase's lock is the caller's.
    `synced`: applied by the sync of its purchase, right after it fetched Apple's state."""
    original = notice.facts.original_transaction_id
    subscription = await repository.latest(db, publisher_id, original)
    if subscription is None or subscription.status == SubscriptionStatus.TERMINATED:
        return await _after_the_end(db, subscription, notice, now)
    older = _older(notice, subscription, synced)
    if older is not None:
        return older
    step = Step(notice, subscription, now)
    outcome = RULES[notice.kind](step)
    await repository.save(db, subscription)
    return Change(NotificationStatus.APPLIED, outcome, subscription.id, step.events)


async def apply_state(
    db: Executor, publisher_id: int, facts: ApplePurchase, now: datetime
) -> Change:
    """Apple's current state of the purchase, read again (the reconciliation's expiry safety
    net), applied as a notification carrying it would be: a renewal extends, an expiry expires,
    a revocation terminates, each with its webhook. The purchase's lock is the caller's."""
    notice = Notice(STATE, facts.signed_at or now, facts)
    return await apply_notice(db, publisher_id, notice, now)
