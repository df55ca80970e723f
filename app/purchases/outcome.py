"""What a verified purchase means for access (SPEC §3's results, SPEC §4's access rule)."""

from __future__ import annotations

from datetime import datetime

from app.apple.transactions import ApplePurchase

AUTO_RENEWABLE = "Auto-Renewable Subscription"
NON_RENEWING = "Non-Renewing Subscription"
CONSUMABLE = "Consumable"

GRANTED = "GRANTED"  # becomes SUBSCRIPTION_CREATED, PURCHASE_OWNERSHIP_UNCHANGED or _TRANSFERRED
EXPIRED = "RECEIVED_EXPIRED_PURCHASE"
REVOKED = "PURCHASE_REVOKED"
OFFER_NOT_FOUND = "OFFER_NOT_FOUND"
UNSUPPORTED = "UNSUPPORTED_PRODUCT_TYPE"


def access_until(purchase: ApplePurchase) -> datetime | None:
    """Until when the purchase grants access (None: for good, unless revoked)."""
    grace = purchase.grace_expires_at
    if purchase.product_type == AUTO_RENEWABLE and purchase.apple_status == 4 and grace is not None:
        return max(grace, purchase.expires_at or grace)
    return purchase.expires_at


def is_revoked(purchase: ApplePurchase) -> bool:
    """Refunded or revoked: Apple set a revocation date, or its status says revoked (5)."""
    return purchase.revoked_at is not None or purchase.apple_status == 5


def grants_access(purchase: ApplePurchase, now: datetime) -> bool:
    if is_revoked(purchase):
        return False
    if purchase.product_type == AUTO_RENEWABLE and purchase.apple_status not in (None, 1, 4):
        return False
    until = access_until(purchase)
    return until is None or now < until


def decide(purchase: ApplePurchase, offer_id: str | None, now: datetime) -> str:
    if purchase.product_type == CONSUMABLE:
        return UNSUPPORTED
    if is_revoked(purchase):
        return REVOKED
    if offer_id is None:
        return OFFER_NOT_FOUND
    return GRANTED if grants_access(purchase, now) else EXPIRED
