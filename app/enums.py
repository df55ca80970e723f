"""The names the service stores and sends: statuses, results, reasons, topics, kinds.

Each is a `StrEnum`, so a member is the very string the contract and the database use: code compares
with members, and statements take them as parameters (or, where a partial index must match the
predicate, have them written into the statement text from here, never typed again by hand).
"""

from __future__ import annotations

from enum import StrEnum


class SyncKind(StrEnum):
    REGISTER = "register"
    TRANSFER = "transfer"


class SyncStatus(StrEnum):
    """A synchronization's status: `processing` (queued or running), `retrying` (waiting to run
    again after a transient failure), `finalized` (done)."""

    PROCESSING = "processing"
    RETRYING = "retrying"
    FINALIZED = "finalized"


class SyncResult(StrEnum):
    """The result of a finalized synchronization: why access was or was not granted."""

    SUBSCRIPTION_CREATED = "SUBSCRIPTION_CREATED"
    PURCHASE_OWNERSHIP_UNCHANGED = "PURCHASE_OWNERSHIP_UNCHANGED"
    PURCHASE_OWNERSHIP_TRANSFERRED = "PURCHASE_OWNERSHIP_TRANSFERRED"
    RECEIVED_EXPIRED_PURCHASE = "RECEIVED_EXPIRED_PURCHASE"
    PURCHASE_REVOKED = "PURCHASE_REVOKED"
    TRANSACTION_ID_NOT_FOUND = "TRANSACTION_ID_NOT_FOUND"
    OFFER_NOT_FOUND = "OFFER_NOT_FOUND"
    INVALID_TRANSACTION = "INVALID_TRANSACTION"
    UNSUPPORTED_PRODUCT_TYPE = "UNSUPPORTED_PRODUCT_TYPE"
    APPLE_UNAVAILABLE = "APPLE_UNAVAILABLE"
    PURCHASE_OWNED_BY_ANOTHER_CUSTOMER = "PURCHASE_OWNED_BY_ANOTHER_CUSTOMER"


class Ownership(StrEnum):
    """A publisher's ownership policy: who a purchase may be granted to. `transfer`
    (Cleeng's): a purchase registered for another customer moves to it. `appAccountToken`: a
    purchase that carries a token is its customer's alone."""

    TRANSFER = "transfer"
    APP_ACCOUNT_TOKEN = "appAccountToken"  # noqa: S105 (a policy's name, not a secret)


class SubscriptionStatus(StrEnum):
    """A subscription's status. As stored, `active` still needs the access rule
    (`app.subscriptions.access`): a stored `active` subscription whose expiry passed is
    `expired` to every reader."""

    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


class EndReason(StrEnum):
    """Why a subscription was terminated (`subscriptionTerminated`'s `reason`)."""

    TRANSFERRED = "TRANSFERRED"
    REFUNDED = "REFUNDED"
    REVOKED = "REVOKED"


class NotificationStatus(StrEnum):
    """A stored App Store notification: waiting to be applied (or for its purchase's sync),
    applied, ignored (older than what is held, or its subscription ended), or stored only
    (a type that changes no subscription)."""

    PENDING = "pending"
    APPLIED = "applied"
    IGNORED = "ignored"
    STORED = "stored"


class NotificationSource(StrEnum):
    """How a stored notification reached the service: posted by Apple, or recovered from Apple's
    notification history by the reconciliation."""

    POSTED = "posted"
    HISTORY = "history"


class PassOutcome(StrEnum):
    """How a reconciliation pass ended: everything read (`completed`); its bound reached, another
    pass follows at once (`partial`); stopped by Apple's errors, the next interval tries again
    (`stopped`); another process took the pass over (`superseded`)."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    STOPPED = "stopped"
    SUPERSEDED = "superseded"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobKind(StrEnum):
    SYNC = "sync"
    WEBHOOK_DELIVERY = "webhook_delivery"
    APPLE_NOTIFICATION = "apple_notification"
    RETENTION = "retention"  # periodic: one row, rescheduled by its own handler
    RECONCILE = "reconcile"  # periodic: Apple's notification history and the expiry safety net


class Topic(StrEnum):
    """The webhook topics a publisher subscribes its endpoints to."""

    SYNC_RESULT = "inappPurchaseSyncResult"
    VALIDATION_SUCCEEDED = "inappPurchaseValidationSucceeded"
    VALIDATION_FAILED = "inappPurchaseValidationFailed"
    SUBSCRIPTION_CREATED = "subscriptionCreated"
    SUBSCRIPTION_TERMINATED = "subscriptionTerminated"
    SUBSCRIPTION_RENEWED = "subscriptionRenewed"
    SUBSCRIPTION_EXPIRED = "subscriptionExpired"
    SUBSCRIPTION_AUTO_RENEW_CHANGED = "subscriptionAutoRenewChanged"


class ActivityMetric(StrEnum):
    """What `activity_minutes` counts per publisher and minute, for the console's charts."""

    SYNC = "sync"  # label: the result of a finalized sync
    APPLE = "apple"  # label: "<operation> <outcome>" of a call to Apple
    WEBHOOK = "webhook"  # label: a delivery attempt's outcome (2xx, 4xx, 5xx, error)
    QUEUE = "queue"  # a gauge, label the job kind: the due jobs, the oldest one's age (highest)


class ProductType(StrEnum):
    """Apple's `type` of an in-app purchase, as it signs it."""

    AUTO_RENEWABLE = "Auto-Renewable Subscription"
    NON_RENEWING = "Non-Renewing Subscription"
    NON_CONSUMABLE = "Non-Consumable"
    CONSUMABLE = "Consumable"


def sql_in(*members: StrEnum) -> str:
    """`('a', 'b')` for a CHECK constraint or an index predicate: enum values, never input."""
    return "(" + ", ".join(f"'{member.value}'" for member in members) + ")"
