"""Applying stored notifications, in `signedDate` order, never letting an older one win (SPEC §6).

The caller holds the purchase's advisory lock (the one the sync takes to finalize), so a
notification and a sync of the same purchase never interleave. A notification older than the
state its subscription holds (`apple_signed_at`) is ignored; one about a purchase that was never
synchronized stays `pending` until `apply_pending` runs in the sync that registers it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apple.notifications import purchase_facts
from app.apple.transactions import ApplePurchase
from app.models import Subscription
from app.notifications.models import APPLIED, IGNORED, PENDING, AppleNotification
from app.notifications.rules import RULES, Result, Step, reinstate
from app.purchases.ownership import current_subscription
from app.webhooks.payloads import iso

log = logging.getLogger(__name__)

WAITING = "waiting for the purchase to be synchronized"


def is_actionable(notification_type: str, has_purchase: bool) -> bool:
    """Types with a rule change subscriptions; TEST and the informational types are stored only.
    `has_purchase`: the notification carries a signed transaction with both ids."""
    return has_purchase and notification_type in RULES


def _facts(note: AppleNotification) -> ApplePurchase:
    assert note.transaction_info is not None
    return purchase_facts(
        note.transaction_info, note.renewal_info, note.apple_status, note.signed_at
    )


def _older(
    note: AppleNotification, subscription: Subscription, synced: bool = False
) -> Result | None:
    """None when the notification is not older than the state held. A notification that waited
    for its purchase's sync, which fetched a newer state from Apple, is in that state already."""
    held = subscription.apple_signed_at
    if held is None or note.signed_at >= held:
        return None
    if synced:
        outcome = f"already in the state the sync fetched from Apple (signed {iso(held)})"
        return Result(APPLIED, outcome, subscription.id)
    return Result(IGNORED, f"older than the state held (signed {iso(held)})", subscription.id)


async def _last_terminated(
    session: AsyncSession, publisher_id: int, original_transaction_id: str
) -> Subscription | None:
    return await session.scalar(
        select(Subscription)
        .where(
            Subscription.publisher_id == publisher_id,
            Subscription.original_transaction_id == original_transaction_id,
            Subscription.status == "terminated",
        )
        .order_by(Subscription.id.desc())
        .limit(1)
    )


async def _without_current(
    session: AsyncSession, note: AppleNotification, original: str, now: datetime
) -> Result:
    ended = await _last_terminated(session, note.publisher_id, original)
    if ended is None:
        return Result(PENDING, WAITING)
    older = _older(note, ended)
    if older is not None:
        return older
    if note.notification_type == "REFUND_REVERSED":
        return await reinstate(session, ended, _facts(note), now)
    reason = ended.terminated_reason
    return Result(IGNORED, f"subscription {ended.id} is terminated ({reason})", ended.id)


async def _decide(
    session: AsyncSession, note: AppleNotification, now: datetime, synced: bool
) -> Result:
    original = note.original_transaction_id
    assert original is not None
    subscription = await current_subscription(session, note.publisher_id, original)
    if subscription is None:
        return await _without_current(session, note, original, now)
    older = _older(note, subscription, synced)
    if older is not None:
        return older
    step = Step(session, note, subscription, _facts(note), now)
    outcome = await RULES[note.notification_type](step)
    return Result(APPLIED, outcome, subscription.id)


async def apply_notification(
    session: AsyncSession, note: AppleNotification, now: datetime, *, synced: bool = False
) -> None:
    """Apply one pending notification (locked by the caller); any other status is left alone.
    `synced`: called by the sync of its purchase, with the state it just fetched from Apple."""
    has_purchase = note.transaction_id is not None and note.original_transaction_id is not None
    if note.status != PENDING or not is_actionable(note.notification_type, has_purchase):
        return
    result = await _decide(session, note, now, synced)
    note.status, note.outcome, note.subscription_id = (
        result.status,
        result.outcome,
        result.subscription_id,
    )
    note.applied_at = None if result.status == PENDING else now
    await session.flush()
    _log(note)


def _log(note: AppleNotification) -> None:
    fields = {
        "notificationUUID": note.notification_uuid,
        "notificationType": note.notification_type,
        "status": note.status,
        "outcome": note.outcome,
    }
    log.info("apple notification", extra={"fields": fields})


async def apply_pending(
    session: AsyncSession, publisher_id: int, original_transaction_id: str, now: datetime
) -> None:
    """The purchase's waiting notifications, oldest first; called by the sync as it finalizes."""
    notes = await session.scalars(
        select(AppleNotification)
        .where(
            AppleNotification.publisher_id == publisher_id,
            AppleNotification.original_transaction_id == original_transaction_id,
            AppleNotification.status == PENDING,
        )
        .order_by(AppleNotification.signed_at, AppleNotification.id)
        .with_for_update()
    )
    for note in list(notes):
        await apply_notification(session, note, now, synced=True)
