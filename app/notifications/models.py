"""Apple's notifications as received, and what each did (SPEC §6). Migration: `0004_notifications`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base

PENDING, APPLIED, IGNORED, STORED = "pending", "applied", "ignored", "stored"
STATUSES = (PENDING, APPLIED, IGNORED, STORED)


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
        CheckConstraint("status IN ('pending', 'applied', 'ignored', 'stored')", name="status"),
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
