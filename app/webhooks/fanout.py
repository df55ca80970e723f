"""From one event to its deliveries: one per active endpoint of the topic, each with its job.

Runs inside `emit`, in the transaction that writes the event, so an event and its deliveries
exist together or not at all (DESIGN decision 6).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.queue import enqueue
from app.models import table
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

DELIVERIES = table(WebhookDelivery)

DELIVERY_JOB = "webhook_delivery"


def new_webhook_id() -> str:
    """The `webhook-id` of a delivery: one per event and endpoint, the same on every retry."""
    return f"msg_{uuid.uuid4().hex}"


def _delivery_row(
    event_id: int, publisher_id: int, topic: str, endpoint: WebhookEndpoint, now: datetime
) -> dict[str, Any]:
    return {
        "publisher_id": publisher_id,
        "event_id": event_id,
        "endpoint_id": endpoint.id,
        "topic": topic,
        "url": endpoint.url,
        "webhook_id": new_webhook_id(),
        "status": "pending",
        "attempts": 0,
        "generation": 0,
        "schedule_step": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def active_endpoints(
    session: AsyncSession, publisher_id: int, topic: str
) -> list[WebhookEndpoint]:
    statement = (
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.publisher_id == publisher_id,
            WebhookEndpoint.topic == topic,
            WebhookEndpoint.active.is_(True),
        )
        .order_by(WebhookEndpoint.position)
    )
    return list(await session.scalars(statement))


async def fan_out(
    session: AsyncSession, event_id: int, publisher_id: int, topic: str, now: datetime
) -> list[int]:
    """Create the event's deliveries and their jobs in the caller's transaction.

    Waking the workers is the caller's (`context.wake_workers_after_commit(session)`, as the sync
    job does); otherwise the jobs wait for the workers' next poll."""
    endpoints = await active_endpoints(session, publisher_id, topic)
    if not endpoints:
        return []
    rows = [_delivery_row(event_id, publisher_id, topic, e, now) for e in endpoints]
    ids = list(await session.scalars(insert(DELIVERIES).values(rows).returning(DELIVERIES.c.id)))
    for delivery_id in ids:
        await enqueue(session, DELIVERY_JOB, {"deliveryId": delivery_id}, run_at=now)
    return ids
