"""What a sync's verified purchase does to the purchase's subscription (docs/api.md §3's results).

Runs in the sync's finalizing transaction, with the purchase locked (`repository.lock_purchase`):
create, refresh, transfer, revoke or expire the subscription, and say which subscription events
that makes, in docs/api.md §5's order (the old subscription's end, then the new one).

First the publisher's ownership policy (`Policy`) says whether the claim may have the purchase at
all. Under `transfer` (Cleeng's) anyone may. Under `appAccountToken`, a purchase whose transaction
carries an `appAccountToken` is only ever granted to the customer with that token; one without a
token follows `transfer` when the publisher registers it, and cannot move away from its current
owner when a customer token does. A claim the policy refuses ends
PURCHASE_OWNED_BY_ANOTHER_CUSTOMER: no access, and nothing changes.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from app.apple.transactions import ApplePurchase
from app.db import Executor
from app.enums import EndReason, Ownership, ProductType, SubscriptionStatus, SyncResult, Topic
from app.subscriptions import repository
from app.subscriptions.access import grants_access, is_active, is_revoked
from app.subscriptions.events import Event, subscription_event
from app.subscriptions.model import Subscription


def decide(purchase: ApplePurchase, offer_id: str | None, now: datetime) -> SyncResult | None:
    """Why the purchase grants no access, or None when it does."""
    if purchase.product_type == ProductType.CONSUMABLE:
        return SyncResult.UNSUPPORTED_PRODUCT_TYPE
    if is_revoked(purchase):
        return SyncResult.PURCHASE_REVOKED
    if offer_id is None:
        return SyncResult.OFFER_NOT_FOUND
    return None if grants_access(purchase, now) else SyncResult.RECEIVED_EXPIRED_PURCHASE


def refresh(subscription: Subscription, purchase: ApplePurchase, now: datetime) -> None:
    """Copy Apple's facts, unless what is stored was signed later than these."""
    stored = subscription.apple_signed_at
    if stored is not None and purchase.signed_at is not None and purchase.signed_at < stored:
        return
    active = grants_access(purchase, now)
    subscription.status = SubscriptionStatus.ACTIVE if active else SubscriptionStatus.EXPIRED
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


def new_subscription(
    publisher_id: int, customer_id: int, offer_id: str, purchase: ApplePurchase, now: datetime
) -> Subscription:
    """A subscription of `customer_id` to `offer_id` from the purchase, not yet written."""
    subscription = Subscription(
        id=None,
        publisher_id=publisher_id,
        customer_id=customer_id,
        offer_id=offer_id,
        status=SubscriptionStatus.ACTIVE,
        product_type=purchase.product_type,
        product_id=purchase.product_id,
        original_transaction_id=purchase.original_transaction_id,
        latest_transaction_id=purchase.latest,
        environment=purchase.environment,
        bundle_id=purchase.bundle_id,
        expires_at=None,
        grace_expires_at=None,
        revoked_at=None,
        apple_status=None,
        auto_renew=False,
        in_trial=False,
        terminated_reason=None,
        apple_signed_at=None,
        created_at=now,
        updated_at=now,
    )
    refresh(subscription, purchase, now)
    return subscription


async def terminate(
    db: Executor, subscription: Subscription, reason: EndReason, now: datetime
) -> Event:
    """End the subscription for `reason`; its `subscriptionTerminated` event."""
    subscription.status, subscription.terminated_reason = SubscriptionStatus.TERMINATED, reason
    subscription.updated_at = now
    await repository.save(db, subscription)
    return subscription_event(Topic.SUBSCRIPTION_TERMINATED, subscription, now, reason=reason)


@dataclass
class Settled:
    """What the sync came to: its result, the subscription it granted (and the one a transfer
    ended), and the subscription events, in order."""

    result: SyncResult
    subscription: Subscription | None = None
    previous: Subscription | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def granted(self) -> bool:
        return self.subscription is not None


@dataclass(frozen=True)
class Policy:
    """The publisher's ownership policy, as a claim meets it: who made the claim (a customer
    token, or the publisher), and the claiming customer's `appAccountToken`."""

    ownership: Ownership = Ownership.TRANSFER
    by_customer: bool = False
    app_account_token: uuid.UUID | None = None


@dataclass(frozen=True)
class Claim:
    """A sync's claim on a purchase: whose it should be, Apple's verified word on it, the offer
    its product maps to (None: none), and the policy it answers to."""

    publisher_id: int
    customer_id: int
    purchase: ApplePurchase
    offer_id: str | None
    policy: Policy = Policy()


def _token(value: str | None) -> uuid.UUID | None:
    """Apple's `appAccountToken` as a UUID; one that is not a UUID matches no customer."""
    try:
        return None if value is None else uuid.UUID(value)
    except ValueError:
        return uuid.UUID(int=0)


def owned_by_another(claim: Claim, current: Subscription | None) -> bool:
    """The policy keeps the purchase from the claim's customer."""
    policy = claim.policy
    if policy.ownership != Ownership.APP_ACCOUNT_TOKEN:
        return False
    token = _token(claim.purchase.app_account_token)
    if token is not None:  # the token's customer's alone, whoever asks
        return token != policy.app_account_token
    # No token: a customer token cannot take it from its current owner; the publisher can.
    owner = None if current is None else current.customer_id
    return policy.by_customer and owner not in (None, claim.customer_id)


async def _grant(
    db: Executor, claim: Claim, offer_id: str, current: Subscription | None, now: datetime
) -> Settled:
    if current is not None and current.customer_id == claim.customer_id:
        current.offer_id = offer_id
        refresh(current, claim.purchase, now)
        await repository.save(db, current)
        return Settled(SyncResult.PURCHASE_OWNERSHIP_UNCHANGED, current)
    settled = Settled(SyncResult.SUBSCRIPTION_CREATED)
    if current is not None:  # ended before the new one exists; its event goes first
        settled.result, settled.previous = SyncResult.PURCHASE_OWNERSHIP_TRANSFERRED, current
        settled.events.append(await terminate(db, current, EndReason.TRANSFERRED, now))
    created = new_subscription(claim.publisher_id, claim.customer_id, offer_id, claim.purchase, now)
    await repository.insert(db, created)
    settled.subscription = created
    settled.events.append(subscription_event(Topic.SUBSCRIPTION_CREATED, created, now))
    return settled


async def _deny(
    db: Executor, claim: Claim, result: SyncResult, current: Subscription | None, now: datetime
) -> Settled:
    """No access: bring the purchase's subscription in line with Apple."""
    settled = Settled(result)
    if current is None:
        return settled
    if result == SyncResult.PURCHASE_REVOKED:
        refresh(current, claim.purchase, now)
        settled.events.append(await terminate(db, current, EndReason.REFUNDED, now))
    elif (
        result == SyncResult.RECEIVED_EXPIRED_PURCHASE and current.customer_id == claim.customer_id
    ):
        was_active = current.status == SubscriptionStatus.ACTIVE
        refresh(current, claim.purchase, now)
        await repository.save(db, current)
        if was_active and current.status == SubscriptionStatus.EXPIRED:
            settled.events.append(subscription_event(Topic.SUBSCRIPTION_EXPIRED, current, now))
    return settled


def _newer_held(held: Subscription | None, purchase: ApplePurchase) -> bool:
    """What the service holds of the purchase came from a word of Apple signed after the one the
    sync read (a notification applied between the sync's call and its finalize)."""
    if held is None or held.apple_signed_at is None or purchase.signed_at is None:
        return False
    return purchase.signed_at < held.apple_signed_at


def successor(held: Subscription, customer_id: int, offer_id: str, now: datetime) -> Subscription:
    """A new subscription of the purchase for `customer_id`, in the state `held` has from Apple."""
    return dataclasses.replace(
        held,
        id=None,
        customer_id=customer_id,
        offer_id=offer_id,
        terminated_reason=None,
        created_at=now,
        updated_at=now,
    )


async def _transfer_held(
    db: Executor, claim: Claim, offer_id: str, current: Subscription, now: datetime
) -> Settled:
    """Another customer claims a purchase whose held state is newer than the sync's: it moves in
    that state, not in the sync's older one."""
    created = successor(current, claim.customer_id, offer_id, now)  # before `current` ends
    settled = Settled(SyncResult.PURCHASE_OWNERSHIP_TRANSFERRED, previous=current)
    settled.events.append(await terminate(db, current, EndReason.TRANSFERRED, now))
    await repository.insert(db, created)
    settled.subscription = created
    settled.events.append(subscription_event(Topic.SUBSCRIPTION_CREATED, created, now))
    return settled


async def _settle_on_newer(
    db: Executor, claim: Claim, offer_id: str, held: Subscription, now: datetime
) -> Settled:
    """Apple's newer word, already held, decides; the sync's older one changes nothing of it."""
    if held.status == SubscriptionStatus.TERMINATED:  # refunded or revoked since the sync's read
        return Settled(SyncResult.PURCHASE_REVOKED)
    if not is_active(held, now):
        return Settled(SyncResult.RECEIVED_EXPIRED_PURCHASE)
    if held.customer_id == claim.customer_id:
        return Settled(SyncResult.PURCHASE_OWNERSHIP_UNCHANGED, held)
    return await _transfer_held(db, claim, offer_id, held, now)


async def settle(db: Executor, claim: Claim, now: datetime) -> Settled:
    """Apply the claim to the purchase's subscription (locked here; the purchase's lock is the
    caller's). Whichever of a sync and a notification is applied last, what is held is the newer
    word from Apple (docs/api.md §6): a sync that read Apple before a notification applied since changes
    nothing of the notification's state, and its result says what that state grants."""
    purchase = claim.purchase
    latest = await repository.latest(db, claim.publisher_id, purchase.original_transaction_id)
    ended = latest is not None and latest.status == SubscriptionStatus.TERMINATED
    if owned_by_another(claim, None if ended else latest):
        return Settled(SyncResult.PURCHASE_OWNED_BY_ANOTHER_CUSTOMER)
    denied = decide(purchase, claim.offer_id, now)
    offer_id = claim.offer_id
    if latest is not None and offer_id is not None and _newer_held(latest, purchase):
        apples = not (ended and latest.terminated_reason == EndReason.TRANSFERRED)
        if apples and purchase.product_type != ProductType.CONSUMABLE:
            return await _settle_on_newer(db, claim, offer_id, latest, now)
    current = None if ended else latest
    if denied is None and claim.offer_id is not None:
        return await _grant(db, claim, claim.offer_id, current, now)
    return await _deny(db, claim, denied or SyncResult.OFFER_NOT_FOUND, current, now)
