"""The schema: SQLAlchemy tables, for Alembic and for the tests. Nothing reads or writes through them.

The service's statements live in repository modules (see `app.db`); `migrations/` are written by
hand to match these tables, and `tests/test_migrations.py` holds the two together.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.callers import CallerKind
from app.enums import (
    DeliveryStatus,
    NotificationSource,
    NotificationStatus,
    Ownership,
    PassOutcome,
    ProductType,
    SubscriptionStatus,
    SyncStatus,
    sql_in,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table(model: type[Base]) -> Table:
    """The model's table, for statements that should run as Core, without the ORM's bulk
    insert/update machinery (on hot paths it costs more CPU than the statement itself)."""
    return cast(Table, model.__table__)


def created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def updated_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now())


class Publisher(Base):
    __tablename__ = "publishers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()


class PublisherToken(Base):
    """One of a publisher's tokens (any number; each can be revoked), kept as its SHA-256 only:
    the token itself is shown once, when it is made."""

    __tablename__ = "publisher_tokens"
    __table_args__ = (Index("ix_publisher_tokens_publisher", "publisher_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StoreKit2Integration(Base):
    """A publisher's StoreKit 2 integration: on or off, and its ownership policy for all its apps
    (docs/api.md §3). Its apps, each with its App Store Connect key, are `storekit2_apps`."""

    __tablename__ = "storekit2_integrations"
    __table_args__ = (CheckConstraint(f"ownership IN {sql_in(*Ownership)}", name="ownership"),)

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    ownership: Mapped[str] = mapped_column(
        String(16), server_default=text(f"'{Ownership.TRANSFER}'")
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class StoreKit2App(Base):
    """One app of a publisher: its bundle id, Apple app id and In-App Purchase key (stored
    sealed), and the environments it is asked in."""

    __tablename__ = "storekit2_apps"
    __table_args__ = (
        CheckConstraint("environment IN ('Production', 'Sandbox', 'Auto')", name="environment"),
    )

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("storekit2_integrations.publisher_id", ondelete="CASCADE"), primary_key=True
    )
    bundle_id: Mapped[str] = mapped_column(String(155), primary_key=True)
    app_apple_id: Mapped[int | None] = mapped_column(BigInteger)
    issuer_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    environment: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Offer(Base):
    __tablename__ = "offers"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    offer_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class OfferProduct(Base):
    """An Apple product id mapped to one offer; the key makes it one offer per publisher."""

    __tablename__ = "offer_products"
    __table_args__ = (
        ForeignKeyConstraint(
            ["publisher_id", "offer_id"],
            ["offers.publisher_id", "offers.offer_id"],
            name="fk_offer_products_offer",
            ondelete="CASCADE",
        ),
    )

    publisher_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(16))


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_publisher_email", "publisher_id", "email", unique=True),
        Index(
            "uq_customers_publisher_external_id",
            "publisher_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    external_id: Mapped[str | None] = mapped_column(Text)
    # The UUID the customer's app passes to StoreKit as `appAccountToken` (docs/api.md §3, §7).
    app_account_token: Mapped[uuid.UUID] = mapped_column(
        Uuid, server_default=text("gen_random_uuid()"), unique=True
    )
    created_at: Mapped[datetime] = created_at()


class Synchronization(Base):
    """One register or transfer of a purchase, from the 202 to its result."""

    __tablename__ = "synchronizations"
    __table_args__ = (
        Index(
            "uq_synchronizations_active_transaction",
            "publisher_id",
            "transaction_id",
            unique=True,
            postgresql_where=text(f"status <> '{SyncStatus.FINALIZED}'"),
        ),
        Index(
            "uq_synchronizations_active_purchase",
            "publisher_id",
            "purchase_key",
            unique=True,
            postgresql_where=text(
                f"status <> '{SyncStatus.FINALIZED}' AND purchase_key IS NOT NULL"
            ),
        ),
        # Lookups lead with what they look up (migrations 0007, 0014): a transaction (the
        # register's check, the console's search), a customer's and a purchase's syncs.
        Index("ix_synchronizations_transaction", "transaction_id", "publisher_id"),
        Index("ix_synchronizations_customer", "customer_id", "publisher_id", "created_at"),
        # Finalized ones only (a sync learns its purchase when it finalizes): a predicate that the
        # register's lookup of resolved syncs does not imply, so that it is never a candidate.
        Index(
            "ix_synchronizations_purchase",
            "original_transaction_id",
            "publisher_id",
            postgresql_where=text(f"status = '{SyncStatus.FINALIZED}'"),
        ),
        CheckConstraint(
            f"caller IN {sql_in(CallerKind.PUBLISHER, CallerKind.CUSTOMER)}", name="caller"
        ),
    )

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Who registered it: a customer token's syncs count toward its limit and follow the
    # ownership policy's rule for customers (docs/api.md §3).
    caller: Mapped[str] = mapped_column(String(16))
    # The app asked for (None: any of the publisher's), then the app Apple knew it in.
    bundle_id: Mapped[str | None] = mapped_column(String(155))
    transaction_id: Mapped[str] = mapped_column(String(32))
    purchase_key: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(256))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(String(40))
    access_granted: Mapped[bool | None] = mapped_column(Boolean)
    offer_id: Mapped[str | None] = mapped_column(String(16))
    original_transaction_id: Mapped[str | None] = mapped_column(String(32))
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What Apple signed about the purchase, verified and decoded (never the JWS), at finalize.
    apple_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Subscription(Base):
    """A customer's entitlement from one Apple purchase (publisher + originalTransactionId).

    At most one subscription per purchase is not terminated: that one names the purchase's owner.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index(
            "uq_subscriptions_current_purchase",
            "publisher_id",
            "original_transaction_id",
            unique=True,
            postgresql_where=text(f"status <> '{SubscriptionStatus.TERMINATED}'"),
        ),
        # Lookup indexes lead with what they look up (migration 0007).
        Index("ix_subscriptions_customer", "customer_id", "offer_id", "publisher_id"),
        Index("ix_subscriptions_latest_transaction", "latest_transaction_id", "publisher_id"),
        Index("ix_subscriptions_purchase", "original_transaction_id", "publisher_id"),
        # The expiry safety net's candidates (migration 0017): auto-renewable subscriptions still
        # stored active, by expiry; access ends at or after `expires_at` (a grace period's end).
        Index(
            "ix_subscriptions_lapsing",
            "expires_at",
            "id",
            postgresql_where=text(
                f"status = '{SubscriptionStatus.ACTIVE}'"
                f" AND product_type = '{ProductType.AUTO_RENEWABLE}'"
            ),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=100_000_001), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    offer_id: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    product_type: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[str] = mapped_column(String(200))
    original_transaction_id: Mapped[str] = mapped_column(String(32))
    latest_transaction_id: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str] = mapped_column(String(16))
    bundle_id: Mapped[str | None] = mapped_column(String(155))  # the app of the purchase
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grace_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    apple_status: Mapped[int | None] = mapped_column(Integer)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    in_trial: Mapped[bool] = mapped_column(Boolean, default=False)
    terminated_reason: Mapped[str | None] = mapped_column(String(16))
    apple_signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the reconciliation last read its state from Apple (the expiry safety net).
    apple_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the safety net last failed to read it (Apple failing beyond the retries).
    apple_check_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegisterFailure(Base):
    """A customer token's latest failed registers and transfers (docs/api.md §3's limit): the times of
    the newest few, one row per customer, so the check is one read by key."""

    __tablename__ = "register_failures"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    failed_at: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)))


class Job(Base):
    """The durable queue: a row per job to run, claimed under a lease, deleted when done."""

    __tablename__ = "jobs"
    # Its autovacuum settings (a queue's: migration 0010) are storage parameters, not columns.
    __table_args__ = (
        Index("ix_jobs_due", "run_at"),
        Index(
            "uq_jobs_singleton",
            "singleton",
            unique=True,
            postgresql_where=text("singleton IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many times in a row its handler failed (raised): what the backoff follows.
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_by: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A periodic job's name (its one row: it reschedules itself); NULL for every other job.
    singleton: Mapped[str | None] = mapped_column(Text)


class WebhookEvent(Base):
    """An event for a publisher's webhooks, written in the transaction that caused it."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_publisher", "publisher_id", "id"),
        # A sync's events, and a subscription's (a notification's events name no sync).
        Index(
            "ix_webhook_events_sync",
            "synchronization_id",
            postgresql_where=text("synchronization_id IS NOT NULL"),
        ),
        Index(
            "ix_webhook_events_subscription",
            text("(payload ->> 'subscriptionId')"),
            "publisher_id",
            postgresql_where=text("(payload ->> 'subscriptionId') IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    synchronization_id: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppleNotification(Base):
    """One notification, stored once per publisher and `notificationUUID`, verified.

    `pending` until a worker applies it (or while its purchase was never synchronized);
    `applied` or `ignored` (older than what is held, or its subscription ended) after;
    `stored` for the types that change nothing (TEST, CONSUMPTION_REQUEST, …).
    """

    __tablename__ = "apple_notifications"
    __table_args__ = (
        UniqueConstraint(
            "publisher_id", "notification_uuid", name="uq_apple_notifications_publisher_uuid"
        ),
        CheckConstraint(f"status IN {sql_in(*NotificationStatus)}", name="status"),
        CheckConstraint(f"source IN {sql_in(*NotificationSource)}", name="source"),
        Index("ix_apple_notifications_publisher", "publisher_id", "id"),
        Index(
            "ix_apple_notifications_purchase",
            "publisher_id",
            "original_transaction_id",
            "status",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    notification_uuid: Mapped[str] = mapped_column(String(64))
    notification_type: Mapped[str] = mapped_column(String(64))
    subtype: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[str | None] = mapped_column(String(16))
    original_transaction_id: Mapped[str | None] = mapped_column(String(32))
    transaction_id: Mapped[str | None] = mapped_column(String(32))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(Text)
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    apple_status: Mapped[int | None] = mapped_column(Integer)
    transaction_info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    renewal_info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    signed_payload: Mapped[str] = mapped_column(Text)
    # Posted by Apple, or recovered from its notification history (docs/api.md §6); rows from before
    # migration 0017 were all posted.
    source: Mapped[str] = mapped_column(
        String(16), server_default=text(f"'{NotificationSource.POSTED}'")
    )


class NotificationHistoryCursor(Base):
    """How far the reconciliation has read Apple's notification history of one app in one
    environment: to `checked_until` entirely, and within the window it is reading (when a pass
    stopped midway), up to the page `page_token` leads to."""

    __tablename__ = "notification_history_cursors"
    __table_args__ = (
        ForeignKeyConstraint(
            ["publisher_id", "bundle_id"],
            ["storekit2_apps.publisher_id", "storekit2_apps.bundle_id"],
            name="fk_notification_history_cursors_app",
            ondelete="CASCADE",
        ),
        CheckConstraint("environment IN ('Production', 'Sandbox')", name="environment"),
    )

    publisher_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(155), primary_key=True)
    environment: Mapped[str] = mapped_column(String(16), primary_key=True)
    checked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    page_token: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReconcilePass(Base):
    """One reconciliation pass: who ran it, when, how it ended and what it did."""

    __tablename__ = "reconcile_passes"
    __table_args__ = (
        CheckConstraint(f"outcome IN {sql_in(*PassOutcome)}", name="outcome"),
        Index("ix_reconcile_passes_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))
    recovered: Mapped[int] = mapped_column(Integer)
    checked: Mapped[int] = mapped_column(Integer)
    corrected: Mapped[int] = mapped_column(Integer)
    apple_errors: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class AppleTestNotification(Base):
    """A test notification an operator asked Apple for: the app and environment its token
    belongs to, so its status is asked where it was requested."""

    __tablename__ = "apple_test_notifications"
    __table_args__ = (
        ForeignKeyConstraint(
            ["publisher_id", "bundle_id"],
            ["storekit2_apps.publisher_id", "storekit2_apps.bundle_id"],
            name="fk_apple_test_notifications_app",
            ondelete="CASCADE",
        ),
        Index("ix_apple_test_notifications_requested_at", "requested_at"),
    )

    publisher_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token: Mapped[str] = mapped_column(String(256), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(155))
    environment: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _timestamp() -> Mapped[datetime]:
    """A `timestamptz` set from the injected clock by the code that writes the row."""
    return mapped_column(DateTime(timezone=True))


class WebhookEndpoint(Base):
    """One URL subscribed to one topic of a publisher; its secret is stored encrypted."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        UniqueConstraint(
            "publisher_id", "topic", "url", name="uq_webhook_endpoints_publisher_topic_url"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    position: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class WebhookDelivery(Base):
    """One event to one endpoint: its `webhook-id` stays the same across every attempt.

    `generation` grows on each replay, so a job of an earlier round knows it is stale;
    `schedule_step` counts the tries of the current round against the retry schedule.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", name="uq_webhook_deliveries_webhook_id"),
        CheckConstraint(f"status IN {sql_in(*DeliveryStatus)}", name="status"),
        Index("ix_webhook_deliveries_publisher", "publisher_id", "id"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
        Index(
            "ix_webhook_deliveries_after_delivery_id",
            "after_delivery_id",
            postgresql_where=text("after_delivery_id IS NOT NULL"),
        ),
        # /metrics counts pending and failed deliveries here, never the succeeded ones
        Index(
            "ix_webhook_deliveries_unsettled",
            "status",
            postgresql_where=text(f"status <> '{DeliveryStatus.SUCCEEDED}'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL")
    )
    topic: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    webhook_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer)
    schedule_step: Mapped[int] = mapped_column(Integer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The delivery of the same cause to the same URL whose first attempt this one waits for;
    # NULL once it may go (docs/api.md §5's order).
    after_delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class WebhookDeliveryAttempt(Base):
    """One try of a delivery: what the endpoint answered (or why nothing was sent), and when."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_webhook_delivery_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = _timestamp()
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class AppleBudget(Base):
    """Calls to Apple's API used in the current window, per app, environment and endpoint: Apple's
    rate limits, shared by every process (`app.apple.budget`)."""

    __tablename__ = "apple_budgets"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    bundle_id: Mapped[str] = mapped_column(String(155), primary_key=True)
    environment: Mapped[str] = mapped_column(String(16), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used: Mapped[int] = mapped_column(Integer)
    used_background: Mapped[int] = mapped_column(Integer)


class ApplePause(Base):
    """An app Apple answered 429: none of its calls until `until` (its Retry-After)."""

    __tablename__ = "apple_pauses"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    bundle_id: Mapped[str] = mapped_column(String(155), primary_key=True)
    environment: Mapped[str] = mapped_column(String(16), primary_key=True)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ActivityMinute(Base):
    """What the service did in one minute, for one publisher (0: every publisher), counted by the
    processes that did it (`app.activity`): syncs by result, Apple calls and webhook attempts by
    outcome, and the queue's depth and age (the highest sampled)."""

    __tablename__ = "activity_minutes"
    # BRIN: tiny, for the pruning of old minutes (rows come in minute order); never a candidate
    # for the charts' reads, which the primary key serves.
    __table_args__ = (Index("ix_activity_minutes_minute", "minute", postgresql_using="brin"),)

    publisher_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    label: Mapped[str] = mapped_column(String(96), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    total_ms: Mapped[int] = mapped_column(BigInteger)
