"""Webhook events: written in the transaction that caused them (SPEC §5, DESIGN decision 6).

`emit` is the one way the rest of the service announces something to a publisher's webhooks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.webhooks.fanout import fan_out_event

TOPICS = (
    "inappPurchaseSyncResult",
    "inappPurchaseValidationSucceeded",
    "inappPurchaseValidationFailed",
    "subscriptionCreated",
    "subscriptionTerminated",
    "subscriptionRenewed",
    "subscriptionExpired",
    "subscriptionAutoRenewChanged",
)


def require_topic(topic: str) -> None:
    """Every event is of a topic SPEC §5 names; anything else is a bug of the caller."""
    if topic not in TOPICS:
        raise ValueError(f"unknown webhook topic {topic!r}")


async def emit(
    session: AsyncSession,
    publisher_id: int,
    topic: str,
    data: dict[str, Any],
    now: datetime,
    *,
    synchronization_id: str | None = None,
) -> int:
    """Record one event in the caller's transaction and return its id.

    In the same transaction, and the same statement: one delivery per active endpoint subscribed
    to the topic, each with its delivery job.
    """
    require_topic(topic)
    return await fan_out_event(session, publisher_id, topic, data, now, synchronization_id)
