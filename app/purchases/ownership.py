"""Who holds a purchase: create, refresh, transfer, revoke, expire, and the events of each.

The sync's rules run inside its finalizing transaction (`app.purchases.finalizing`), with the
purchase and the sync row locked. Events follow SPEC §5's order: validation, then the old
subscription's end, then the new one, then the result. `lock_purchase`, `current_subscription` and
`refresh` also serve the notifications, through the ORM.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.apple.transactions import ApplePurchase
from app.models import Subscription, Synchronization
from app.purchases import outcome as o
from app.purchases.finalizing import Finalizing
from app.webhooks import payloads

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
    tx: Finalizing, sync: Synchronization, purchase: ApplePurchase, offer_id: str
) -> Subscription:
    subscription = Subscription(
        publisher_id=sync.publisher_id,
        customer_id=sync.customer_id,
        offer_id=offer_id,
        product_type=purchase.product_type,
        product_id=purchase.product_id,
        original_transaction_id=purchase.original_transaction_id,
        environment=purchase.environment,
        terminated_reason=None,
        created_at=tx.now,
    )
    refresh(subscription, purchase, tx.now)
    await tx.insert_subscription(subscription)
    return subscription


async def _terminate(tx: Finalizing, subscription: Subscription, reason: str) -> None:
    subscription.status, subscription.terminated_reason, subscription.updated_at = (
        "terminated",
        reason,
        tx.now,
    )
    await tx.save_subscription(subscription)


def _finish(
    sync: Synchronization,
    result: str,
    granted: bool,
    now: datetime,
    purchase: ApplePurchase | None = None,
) -> None:
    sync.status, sync.result, sync.access_granted, sync.updated_at = (
        "finalized",
        result,
        granted,
        now,
    )
    if purchase is not None:
        sync.original_transaction_id = purchase.original_transaction_id


async def _grant(
    tx: Finalizing,
    sync: Synchronization,
    purchase: ApplePurchase,
    offer_id: str,
    current: Subscription | None,
) -> None:
    now = tx.now
    previous = current if current is not None and current.customer_id != sync.customer_id else None
    if current is not None and previous is None:
        result, subscription = UNCHANGED, current
        subscription.offer_id = offer_id
        refresh(subscription, purchase, now)
        await tx.save_subscription(subscription)
    else:
        result = TRANSFERRED if previous is not None else CREATED
        if previous is not None:  # ended before the new one exists; its event follows
            await _terminate(tx, previous, "TRANSFERRED")
        subscription = await _create(tx, sync, purchase, offer_id)
    _finish(sync, result, True, now, purchase)
    sync.offer_id, sync.subscription_id = offer_id, subscription.id
    validation = payloads.validation_succeeded(
        sync, subscription, VALIDATION_RESULT[result], now, previous
    )
    tx.emit("inappPurchaseValidationSucceeded", validation)
    if previous is not None:
        tx.emit(
            "subscriptionTerminated",
            payloads.subscription_event(previous, now, reason="TRANSFERRED"),
        )
    if result != UNCHANGED:
        tx.emit("subscriptionCreated", payloads.subscription_event(subscription, now))
    tx.emit("inappPurchaseSyncResult", payloads.sync_result(sync))


async def _deny(
    tx: Finalizing,
    sync: Synchronization,
    purchase: ApplePurchase,
    result: str,
    current: Subscription | None,
) -> None:
    """No access: record why, and bring the purchase's subscription in line with Apple."""
    now = tx.now
    _finish(sync, result, False, now, purchase)
    failed = payloads.validation_failed(sync, purchase.product_id, purchase.environment)
    tx.emit("inappPurchaseValidationFailed", failed)
    if current is not None and result == o.REVOKED:
        refresh(current, purchase, now)
        await _terminate(tx, current, "REFUNDED")
        tx.emit(
            "subscriptionTerminated", payloads.subscription_event(current, now, reason="REFUNDED")
        )
    elif current is not None and result == o.EXPIRED and current.customer_id == sync.customer_id:
        was_active = current.status == "active"
        refresh(current, purchase, now)
        await tx.save_subscription(current)
        if was_active and current.status == "expired":
            tx.emit("subscriptionExpired", payloads.subscription_event(current, now))
    tx.emit("inappPurchaseSyncResult", payloads.sync_result(sync))


async def apply(
    tx: Finalizing,
    sync: Synchronization,
    purchase: ApplePurchase,
    offer_id: str | None,
    outcome: str,
) -> None:
    """The rules for a purchase Apple told us about; the sync is saved by the caller."""
    current = await tx.current_subscription(purchase.original_transaction_id)
    if outcome == o.GRANTED and offer_id is not None:
        await _grant(tx, sync, purchase, offer_id, current)
    else:
        await _deny(tx, sync, purchase, outcome, current)


def finish_without_purchase(tx: Finalizing, sync: Synchronization, result: str) -> None:
    """Apple could not tell us about the purchase: no subscription changes."""
    _finish(sync, result, False, tx.now)
    tx.emit("inappPurchaseValidationFailed", payloads.validation_failed(sync, None, None))
    tx.emit("inappPurchaseSyncResult", payloads.sync_result(sync))
