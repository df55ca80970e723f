"""The simulator's domain: registered apps, purchases and their transactions, in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

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
        return _APPLE_TYPES[self]


_APPLE_TYPES = {
    ProductType.AUTO_RENEWABLE: "Auto-Renewable Subscription",
    ProductType.NON_CONSUMABLE: "Non-Consumable",
    ProductType.NON_RENEWING: "Non-Renewing Subscription",
    ProductType.CONSUMABLE: "Consumable",
}


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


@dataclass
class App:
    bundle_id: str
    app_apple_id: int
    issuer_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey
    notification_url: str | None = None


@dataclass
class Transaction:
    """One signed transaction: the original purchase or a renewal. ``signed`` caches its JWS."""

    transaction_id: str
    purchase_date: int
    expires_date: int | None
    reason: str
    web_order_line_item_id: str | None
    signed_date: int
    revocation_date: int | None = None
    revocation_reason: int | None = None
    signed: str | None = None

    def changed(self, now: int) -> None:
        """Forget the cached JWS: the next one is signed with ``signedDate`` = ``now``."""
        self.signed_date = now
        self.signed = None


@dataclass
class Purchase:
    """A purchase and, for subscriptions, every renewal, under one ``originalTransactionId``."""

    bundle_id: str
    product_id: str
    product_type: ProductType
    environment: Environment
    transactions: list[Transaction]
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
    url: str | None
    at: int
    status_code: int | None = None
    error: str | None = None


@dataclass
class NotificationRecord:
    """A signed notification and every attempt to deliver it."""

    notification_uuid: str
    notice: Notice
    bundle_id: str
    original_transaction_id: str
    signed_payload: str
    attempts: list[DeliveryAttempt] = field(default_factory=list)
