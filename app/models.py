"""SQLAlchemy tables. Migrations in `migrations/` are written by hand to match."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
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
