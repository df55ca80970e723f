"""The simulator's domain: registered apps, purchases and their transactions, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

DAY_MS = 86_400_000


class Environment(StrEnum):
    PRODUCTION = "Production"
    SANDBOX = "Sandbox"


class ProductType(StrEnum):
    AUTO_RENEWABLE = "auto-renewable"
    NON_CONSUMABLE = "non-consumable"
    NON_RENEWING = "non-renewing"
    CONSUMABLE = "consumable"

    @property
    def apple_name(self) -> str:
        """The ``type`` of a signed transaction."""
        return _APPLE_TYPES[self]

    @property
    def history_name(self) -> str:
        """The ``productType`` filter of Get Transaction History."""
        return self.name.replace("NON_RENEWING", "NON_RENEWABLE")


_APPLE_TYPES = {
    ProductType.AUTO_RENEWABLE: "Auto-Renewable Subscription",
    ProductType.NON_CONSUMABLE: "Non-Consumable",
    ProductType.NON_RENEWING: "Non-Renewing Subscription",
    ProductType.CONSUMABLE: "Consumable",
}


class OwnershipType(StrEnum):
    PURCHASED = "PURCHASED"
    FAMILY_SHARED = "FAMILY_SHARED"


class Phase(StrEnum):
    """Where an auto-renewable subscription stands, apart from revocation and the clock."""

    ACTIVE = "active"
    EXPIRED = "expired"
    BILLING_RETRY = "billing_retry"
    GRACE_PERIOD = "grace_period"


class Status(IntEnum):
    """Apple's subscription status, as in the Get All Subscription Statuses response."""

    ACTIVE = 1
    EXPIRED = 2
    BILLING_RETRY = 3
    BILLING_GRACE_PERIOD = 4
    REVOKED = 5


class SendAttemptResult(StrEnum):
    """What Apple records of one attempt to post a notification (Get Notification History)."""

    SUCCESS = "SUCCESS"
    TIMED_OUT = "TIMED_OUT"
    TLS_ISSUE = "TLS_ISSUE"
    CIRCULAR_REDIRECT = "CIRCULAR_REDIRECT"
    NO_RESPONSE = "NO_RESPONSE"
    SOCKET_ISSUE = "SOCKET_ISSUE"
    UNSUPPORTED_CHARSET = "UNSUPPORTED_CHARSET"
    INVALID_RESPONSE = "INVALID_RESPONSE"
    PREMATURE_CLOSE = "PREMATURE_CLOSE"
    UNSUCCESSFUL_HTTP_RESPONSE_CODE = "UNSUCCESSFUL_HTTP_RESPONSE_CODE"
    OTHER = "OTHER"


@dataclass
class App:
    """An app and its API key. ``environment``: what the simulator's root acts for when a call
    names no transaction (a test notification, a mass extension), as Apple's hosts are two."""

    bundle_id: str
    app_apple_id: int
    issuer_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey
    notification_url: str | None = None
    environment: Environment = Environment.SANDBOX


@dataclass
class Transaction:
    """One signed transaction: the original purchase or a renewal. ``signed`` caches its JWS;
    ``modified_date`` orders the transaction history, as Apple's does."""

    transaction_id: str
    purchase_date: int
    expires_date: int | None
    reason: str
    web_order_line_item_id: str | None
    signed_date: int
    revocation_date: int | None = None
    revocation_reason: int | None = None
    revocation_type: str | None = None
    order_id: str = ""
    modified_date: int = 0
    finished: bool = False
    consumption: dict[str, Any] | None = None
    signed: str | None = None

    def changed(self, now: int) -> None:
        """Forget the cached JWS: the next one is signed with ``signedDate`` = ``now``."""
        self.signed_date = now
        self.signed = None

    def modified(self, now: int) -> None:
        """Its content changed: signed anew, and later in the transaction history."""
        self.modified_date = now
        self.changed(now)


@dataclass
class Purchase:
    """A purchase and, for subscriptions, every renewal, under one ``originalTransactionId``.
    Purchases of one ``account`` (and app and environment) are one customer's."""

    bundle_id: str
    product_id: str
    product_type: ProductType
    environment: Environment
    transactions: list[Transaction]
    account: str = ""
    app_transaction_id: str = ""
    ownership: OwnershipType = OwnershipType.PURCHASED
    period_ms: int = 30 * DAY_MS
    quantity: int = 1
    app_account_token: str | None = None
    offer_type: int | None = None
    price: int | None = None
    currency: str | None = None
    subscription_group_identifier: str | None = None
    phase: Phase = Phase.ACTIVE
    auto_renew: bool = True
    expiration_intent: int | None = None
    grace_period_expires_date: int | None = None
    extension_dates: list[int] = field(default_factory=list)
    renewal_signed_date: int = 0
    renewal_signed: str | None = field(default=None, repr=False)

    @property
    def original(self) -> Transaction:
        return self.transactions[0]

    @property
    def latest(self) -> Transaction:
        return self.transactions[-1]

    @property
    def original_transaction_id(self) -> str:
        return self.original.transaction_id

    @property
    def is_subscription(self) -> bool:
        return self.product_type is ProductType.AUTO_RENEWABLE

    @property
    def customer(self) -> tuple[str, Environment, str]:
        """Whose purchase it is: app, environment and account."""
        return self.bundle_id, self.environment, self.account

    def renewal_changed(self, now: int) -> None:
        self.renewal_signed_date = now
        self.renewal_signed = None

    def status(self, now: int) -> Status:
        """Apple's status: revoked first, then the phase; an active one past its expiry is expired."""
        if self.latest.revocation_date is not None:
            return Status.REVOKED
        if self.phase is Phase.GRACE_PERIOD:
            return Status.BILLING_GRACE_PERIOD
        if self.phase is Phase.BILLING_RETRY:
            return Status.BILLING_RETRY
        expires = self.latest.expires_date
        if self.phase is Phase.EXPIRED or (expires is not None and expires <= now):
            return Status.EXPIRED
        return Status.ACTIVE


@dataclass(frozen=True)
class Notice:
    """A notification to send: Apple's ``notificationType`` and ``subtype``."""

    notification_type: str
    subtype: str | None = None


@dataclass(frozen=True)
class DeliveryAttempt:
    """One post of a notification: Apple's ``sendAttemptResult``, and what the simulator saw."""

    url: str | None
    at: int
    result: SendAttemptResult = SendAttemptResult.OTHER
    status_code: int | None = None
    error: str | None = None


@dataclass
class NotificationRecord:
    """A signed notification and every attempt to deliver it; ``seq`` orders the history."""

    notification_uuid: str
    notice: Notice
    bundle_id: str
    environment: Environment
    signed_date: int
    signed_payload: str
    original_transaction_id: str | None = None
    seq: int = 0
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(a.result is SendAttemptResult.SUCCESS for a in self.attempts)


@dataclass
class AppTransaction:
    """A customer's download of an app (Get App Transaction Info)."""

    app_transaction_id: str
    bundle_id: str
    environment: Environment
    account: str
    original_purchase_date: int


@dataclass
class TestNotification:
    """A Request a Test Notification: its token and the notification it sent."""

    token: str
    bundle_id: str
    notification_uuid: str


@dataclass
class Extension:
    """One Extend a Subscription Renewal Date, kept to answer the same request the same way."""

    bundle_id: str
    original_transaction_id: str
    request_identifier: str
    web_order_line_item_id: str | None
    effective_date: int | None


@dataclass
class MassExtension:
    """One Extend Subscription Renewal Dates for All Active Subscribers, and how it went."""

    request_identifier: str
    bundle_id: str
    environment: Environment
    product_id: str
    extend_by_days: int
    extend_reason_code: int
    storefront_country_codes: list[str] | None
    requested_date: int
    complete_date: int | None = None
    succeeded_count: int = 0
    failed_count: int = 0
