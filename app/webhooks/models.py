"""Webhook tables: endpoints (subscriptions), deliveries and their attempts (SPEC §5).

The events themselves are `app.models.WebhookEvent`. Migration: `0003_webhooks`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base

DELIVERY_STATUSES = ("pending", "succeeded", "failed")


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
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        Index("ix_webhook_deliveries_publisher", "publisher_id", "id"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
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
