"""A subscription as the rules see it: one customer's entitlement from one Apple purchase."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from app.enums import EndReason, SubscriptionStatus


@dataclass(slots=True)
class Subscription:
    """A row of `subscriptions`. At most one subscription per purchase (publisher and
    originalTransactionId) is not terminated: that one names the purchase's owner."""

    id: int | None  # None until inserted
    publisher_id: int
    customer_id: int
    offer_id: str
    status: SubscriptionStatus
    product_type: str
    product_id: str
    original_transaction_id: str
    latest_transaction_id: str
    environment: str
    expires_at: datetime | None
    grace_expires_at: datetime | None
    revoked_at: datetime | None
    apple_status: int | None
    auto_renew: bool
    in_trial: bool
    terminated_reason: EndReason | None
    apple_signed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    bundle_id: str | None = None  # the app of the purchase (None: unknown, from before apps)
    apple_checked_at: datetime | None = None  # when the reconciliation last read it from Apple
    apple_check_failed_at: datetime | None = None  # when the safety net last failed to read it


COLUMNS = tuple(f.name for f in fields(Subscription))
WRITTEN = tuple(name for name in COLUMNS if name != "id")  # the database gives the id
