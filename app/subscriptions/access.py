"""The access rule of docs/api.md §4, once for a verified purchase, once for a stored subscription, and
once as SQL for the readers that filter by it (a test holds the last two together).

Auto-renewable subscriptions grant access while Apple's status is active (1) or in billing grace
period (4), until `expiresDate` (or `gracePeriodExpiresDate`); non-consumables and non-renewing
subscriptions until revoked (non-renewing: until `expiresDate` when Apple gives one); nothing grants
access after `revocationDate`.
"""

from __future__ import annotations

from datetime import datetime

from app.apple.transactions import ApplePurchase
from app.enums import ProductType, SubscriptionStatus
from app.subscriptions.model import Subscription

ACTIVE, IN_GRACE, REVOKED = 1, 4, 5  # Apple's subscription statuses that matter here


def purchase_access_until(purchase: ApplePurchase) -> datetime | None:
    """Until when the purchase grants access (None: for good, unless revoked)."""
    grace = purchase.grace_expires_at
    renewable = purchase.product_type == ProductType.AUTO_RENEWABLE
    if renewable and purchase.apple_status == IN_GRACE and grace is not None:
        return max(grace, purchase.expires_at or grace)
    return purchase.expires_at


def is_revoked(purchase: ApplePurchase) -> bool:
    """Refunded or revoked: Apple set a revocation date, or its status says revoked (5)."""
    return purchase.revoked_at is not None or purchase.apple_status == REVOKED


def grants_access(purchase: ApplePurchase, now: datetime) -> bool:
    if is_revoked(purchase):
        return False
    renewable = purchase.product_type == ProductType.AUTO_RENEWABLE
    if renewable and purchase.apple_status not in (None, ACTIVE, IN_GRACE):
        return False
    until = purchase_access_until(purchase)
    return until is None or now < until


def access_end(subscription: Subscription) -> datetime | None:
    """Until when a stored subscription grants access: its expiry, or the end of a billing grace
    period when that is later; None for good."""
    until, grace = subscription.expires_at, subscription.grace_expires_at
    if grace is not None and subscription.apple_status == IN_GRACE:
        return max(until, grace) if until else grace
    return until


def is_active(subscription: Subscription, now: datetime) -> bool:
    """The access rule, applied to what is stored about the subscription."""
    if subscription.status != SubscriptionStatus.ACTIVE or subscription.revoked_at is not None:
        return False
    until = access_end(subscription)
    return until is None or now < until


def effective_status(subscription: Subscription, now: datetime) -> SubscriptionStatus:
    """What a reader is told: terminated, or active by the access rule, or expired."""
    if subscription.status == SubscriptionStatus.TERMINATED:
        return SubscriptionStatus.TERMINATED
    return SubscriptionStatus.ACTIVE if is_active(subscription, now) else SubscriptionStatus.EXPIRED


# `access_end` in SQL: PostgreSQL's greatest() skips NULLs, as `max(until, grace)` above does.
ACCESS_END_SQL = (
    f"CASE WHEN apple_status = {IN_GRACE} AND grace_expires_at IS NOT NULL"
    " THEN greatest(expires_at, grace_expires_at) ELSE expires_at END"
)


def active_sql(now: str, active: str) -> str:
    """`is_active` as a condition on `subscriptions`, with `now` and `active` parameters such as
    `$3` (the time, and `SubscriptionStatus.ACTIVE`). The status is a parameter, not a constant,
    so that the planner never takes the current-purchase index (`status <> 'terminated'`) for a
    lookup by customer."""
    return (
        f"(status = {active} AND revoked_at IS NULL"
        f" AND (({ACCESS_END_SQL}) IS NULL OR ({ACCESS_END_SQL}) > {now}))"
    )


def status_sql(status: SubscriptionStatus, now: datetime, first: int) -> tuple[str, list[object]]:
    """`effective_status(...) == status` as a condition on `subscriptions`, its parameters
    numbered from `first`, and their values."""
    n = [f"${first + i}" for i in range(3)]
    if status == SubscriptionStatus.ACTIVE:
        return active_sql(n[0], n[1]), [now, SubscriptionStatus.ACTIVE]
    if status == SubscriptionStatus.TERMINATED:
        return f"status = {n[0]}", [SubscriptionStatus.TERMINATED]
    condition = f"(status <> {n[0]} AND NOT {active_sql(n[1], n[2])})"
    return condition, [SubscriptionStatus.TERMINATED, now, SubscriptionStatus.ACTIVE]
