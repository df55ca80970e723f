"""Who holds a purchase: create, refresh, transfer, revoke, expire, and the events of each.

Called inside the finalizing transaction, with the purchase and the sync row locked. Events follow
SPEC §5's order: validation, then the old subscription's end, then the new one, then the result.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.apple.transactions import ApplePurchase
from app.models import Subscription, Synchronization
from app.purchases import outcome as o
from app.webhooks import payloads
from app.webhooks.events import emit

CREATED = "SUBSCRIPTION_CREATED"
UNCHANGED = "PURCHASE_OWNERSHIP_UNCHANGED"
TRANSFERRED = "PURCHASE_OWNERSHIP_TRANSFERRED"
VALIDATION_RESULT = {
    CREATED: "SubscriptionCreated",
    UNCHANGED: "SubscriptionSynchronized",
    TRANSFERRED: "SubscriptionTransferred",
}


async def current_subscription(
    session: AsyncSession, publisher_id: int, original_transaction_id: str
) -> Subscription | None:
    """The purchase's one subscription that is not terminated, locked."""
    return await session.scalar(
        select(Subscription)
        .where(
            Subscription.publisher_id == publisher_id,
            Subscription.original_transaction_id == original_transaction_id,
            Subscription.status != "terminated",
        )
        .with_for_update()
    )


async def lock_purchase(session: AsyncSession, publisher_id: int, original: str) -> None:
    """Serialize everything that changes one purchase (syncs, notifications) until commit."""
    key = f"{publisher_id}:{original}"
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )


def refresh(subscription: Subscription, purchase: ApplePurchase, now: datetime) -> None:
    """Copy Apple's facts, unless what is stored was signed later than these."""
    stored = subscription.apple_signed_at
    if stored is not None and purchase.signed_at is not None and purchase.signed_at < stored:
        return
    subscription.status = "active" if o.grants_access(purchase, now) else "expired"
    subscription.product_id = purchase.product_id
    subscription.latest_transaction_id = purchase.latest
    subscription.expires_at = purchase.expires_at
    subscription.grace_expires_at = purchase.grace_expires_at
    subscription.revoked_at = purchase.revoked_at
    subscription.apple_status = purchase.apple_status
    subscription.auto_renew = purchase.auto_renew
    subscription.in_trial = purchase.in_trial
    subscription.apple_signed_at = purchase.signed_at
    subscription.updated_at = now


async def _create(
    session: AsyncSession,
    sync: Synchronization,
    purchase: ApplePurchase,
    offer_id: str,
    now: datetime,
) -> Subscription:
    subscription = Subscription(
        publisher_id=sync.publisher_id,
        customer_id=sync.customer_id,
        offer_id=offer_id,
        product_type=purchase.product_type,
        product_id=purchase.product_id,
        original_transaction_id=purchase.original_transaction_id,
        environment=purchase.environment,
        created_at=now,
    )
    refresh(subscription, purchase, now)
    session.add(subscription)
    await session.flush()
    return subscription


async def _terminate(
    session: AsyncSession, subscription: Subscription, reason: str, now: datetime, sync_id: str
) -> None:
    subscription.status, subscription.terminated_reason, subscription.updated_at = (
        "terminated",
        reason,
        now,
    )
    await session.flush()
    data = payloads.subscription_event(subscription, now, reason=reason)
    await emit(
        session,
        subscription.publisher_id,
        "subscriptionTerminated",
        data,
        now,
        synchronization_id=sync_id,
    )


def _finish(
    sync: Synchronization,
    result: str,
    granted: bool,
    now: datetime,
    purchase: ApplePurchase | None = None,
) -> None:
    """Set only here, after any flush for a subscription's id: the sync is written once."""
    sync.status, sync.result, sync.access_granted, sync.updated_at = (
        "finalized",
        result,
        granted,
        now,
    )
    if purchase is not None:
        sync.original_transaction_id = purchase.original_transaction_id


async def _emit(
    session: AsyncSession, sync: Synchronization, topic: str, data: dict[str, object], now: datetime
) -> None:
    await emit(session, sync.publisher_id, topic, data, now, synchronization_id=sync.id)


async def _grant(
    session: AsyncSession,
    sync: Synchronization,
    purchase: ApplePurchase,
    offer_id: str,
    current: Subscription | None,
    now: datetime,
) -> None:
    previous = current if current is not None and current.customer_id != sync.customer_id else None
    if current is not None and previous is None:
        result, subscription = UNCHANGED, current
        subscription.offer_id = offer_id
        refresh(subscription, purchase, now)
    else:
        result = TRANSFERRED if previous is not None else CREATED
        if previous is not None:
            previous.status = "terminated"  # ended before the new one exists; its event follows
            previous.terminated_reason, previous.updated_at = "TRANSFERRED", now
            await session.flush()
        subscription = await _create(session, sync, purchase, offer_id, now)
    _finish(sync, result, True, now, purchase)
    sync.offer_id, sync.subscription_id = offer_id, subscription.id
    validation = payloads.validation_succeeded(
        sync, subscription, VALIDATION_RESULT[result], now, previous
    )
    await _emit(session, sync, "inappPurchaseValidationSucceeded", validation, now)
    if previous is not None:
        ended = payloads.subscription_event(previous, now, reason="TRANSFERRED")
        await _emit(session, sync, "subscriptionTerminated", ended, now)
    if result != UNCHANGED:
        await _emit(
            session,
            sync,
            "subscriptionCreated",
            payloads.subscription_event(subscription, now),
            now,
        )
    await _emit(session, sync, "inappPurchaseSyncResult", payloads.sync_result(sync), now)


async def _deny(
    session: AsyncSession,
    sync: Synchronization,
    purchase: ApplePurchase,
    result: str,
    current: Subscription | None,
    now: datetime,
) -> None:
    """No access: record why, and bring the purchase's subscription in line with Apple."""
    _finish(sync, result, False, now, purchase)
    failed = payloads.validation_failed(sync, purchase.product_id, purchase.environment)
    await _emit(session, sync, "inappPurchaseValidationFailed", failed, now)
    if current is not None and result == o.REVOKED:
        refresh(current, purchase, now)
        await _terminate(session, current, "REFUNDED", now, sync.id)
    elif current is not None and result == o.EXPIRED and current.customer_id == sync.customer_id:
        was_active = current.status == "active"
        refresh(current, purchase, now)
        if was_active and current.status == "expired":
            data = payloads.subscription_event(current, now)
            await _emit(session, sync, "subscriptionExpired", data, now)
    await _emit(session, sync, "inappPurchaseSyncResult", payloads.sync_result(sync), now)


async def apply(
    session: AsyncSession,
    sync: Synchronization,
    purchase: ApplePurchase,
    offer_id: str | None,
    outcome: str,
    now: datetime,
) -> None:
    current = await current_subscription(
        session, sync.publisher_id, purchase.original_transaction_id
    )
    if outcome == o.GRANTED and offer_id is not None:
        await _grant(session, sync, purchase, offer_id, current, now)
    else:
        await _deny(session, sync, purchase, outcome, current, now)


async def finish_without_purchase(
    session: AsyncSession, sync: Synchronization, result: str, now: datetime
) -> None:
    """Apple could not tell us about the purchase: no subscription changes."""
    _finish(sync, result, False, now)
    await _emit(
        session,
        sync,
        "inappPurchaseValidationFailed",
        payloads.validation_failed(sync, None, None),
        now,
    )
    await _emit(session, sync, "inappPurchaseSyncResult", payloads.sync_result(sync), now)
