"""Extending subscription renewal dates, one subscription or all of a product's active ones.

Apple extends an active, paid subscription by 1 to 90 days, at most twice in 365 days; not a
subscription shared through Family Sharing, nor one that is expired, in billing retry or in a
grace period (whose expiry has passed). Each extension posts ``RENEWAL_EXTENDED``; a mass
extension posts ``RENEWAL_EXTENSION``/``FAILURE`` for each active subscription it could not
extend and ``RENEWAL_EXTENSION``/``SUMMARY`` when done.
"""

from __future__ import annotations

from app.simulator.errors import ErrorCode
from app.simulator.model import DAY_MS, MassExtension, OwnershipType, Purchase, Status
from app.simulator.payloads import STOREFRONT
from app.simulator.state import SimulatorState

MAX_DAYS = 90
MAX_PER_YEAR = 2
YEAR_MS = 365 * DAY_MS


def refusal(purchase: Purchase, now: int) -> ErrorCode | None:
    """Why the subscription cannot be extended now, or ``None`` if it can."""
    if not purchase.is_subscription or purchase.status(now) is not Status.ACTIVE:
        return ErrorCode.SUBSCRIPTION_EXTENSION_INELIGIBLE
    if purchase.ownership is OwnershipType.FAMILY_SHARED:
        return ErrorCode.FAMILY_SHARED_SUBSCRIPTION_EXTENSION_INELIGIBLE
    recent = [d for d in purchase.extension_dates if d > now - YEAR_MS]
    if len(recent) >= MAX_PER_YEAR:
        return ErrorCode.SUBSCRIPTION_MAX_EXTENSION
    return None


def extend(purchase: Purchase, days: int, now: int) -> int:
    """Move the renewal date ``days`` later; the new expiry."""
    latest = purchase.latest
    latest.expires_date = (latest.expires_date or now) + days * DAY_MS
    latest.modified(now)
    purchase.renewal_changed(now)
    purchase.extension_dates.append(now)
    return latest.expires_date


def candidates(state: SimulatorState, mass: MassExtension) -> list[Purchase]:
    """The active subscribers a mass extension is about."""
    now, storefronts = state.now(), mass.storefront_country_codes
    if storefronts is not None and STOREFRONT not in storefronts:
        return []
    return [
        purchase
        for purchase in state.purchases.values()
        if purchase.bundle_id == mass.bundle_id
        and purchase.environment is mass.environment
        and purchase.product_id == mass.product_id
        and purchase.status(now) is Status.ACTIVE
    ]
