"""SQLAlchemy tables. Migrations in `migrations/` are written by hand to match."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = created_at()


class StoreKit2Integration(Base):
    """A publisher's App Store Connect key and app. The private key is stored encrypted."""

    __tablename__ = "storekit2_integrations"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    bundle_id: Mapped[str] = mapped_column(String(155))
    app_apple_id: Mapped[int | None] = mapped_column(BigInteger)
    issuer_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    environment: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
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
            postgresql_where=text("status <> 'finalized'"),
        ),
        Index(
            "uq_synchronizations_active_purchase",
            "publisher_id",
            "purchase_key",
            unique=True,
            postgresql_where=text("status <> 'finalized' AND purchase_key IS NOT NULL"),
        ),
        Index(
            "ix_synchronizations_resolved",
            "publisher_id",
            "transaction_id",
            postgresql_where=text("original_transaction_id IS NOT NULL"),
        ),
    )

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
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
            postgresql_where=text("status <> 'terminated'"),
        ),
        # Lookup indexes lead with what they look up (migration 0007).
        Index("ix_subscriptions_customer", "customer_id", "offer_id", "publisher_id"),
        Index("ix_subscriptions_latest_transaction", "latest_transaction_id", "publisher_id"),
        Index("ix_subscriptions_purchase", "original_transaction_id", "publisher_id"),
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
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grace_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    apple_status: Mapped[int | None] = mapped_column(Integer)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    in_trial: Mapped[bool] = mapped_column(Boolean, default=False)
    terminated_reason: Mapped[str | None] = mapped_column(String(16))
    apple_signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """The durable queue: a row per job to run, claimed under a lease, deleted when done."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "run_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookEvent(Base):
    """An event for a publisher's webhooks, written in the transaction that caused it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_publisher", "publisher_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    synchronization_id: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
