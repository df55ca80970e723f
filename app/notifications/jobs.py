"""The `apple_notification` job: apply one stored notification, once, in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import Context
from app.db import unit_of_work
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.notifications.apply import apply_notification
from app.notifications.models import AppleNotification
from app.purchases.ownership import lock_purchase

JOB_KIND = "apple_notification"


def job_payload(publisher_id: int, notification_id: int) -> dict[str, int]:
    return {"publisherId": publisher_id, "notificationId": notification_id}


async def apply_stored(
    session: AsyncSession, publisher_id: int, notification_id: int, now: datetime
) -> None:
    """Lock the purchase as the sync does, then the notification, and apply it if still due."""
    original = await session.scalar(
        select(AppleNotification.original_transaction_id).where(
            AppleNotification.id == notification_id,
            AppleNotification.publisher_id == publisher_id,
        )
    )
    if original is None:
        return
    await lock_purchase(session, publisher_id, original)
    note = await session.get(
        AppleNotification, notification_id, with_for_update=True, populate_existing=True
    )
    if note is not None:
        await apply_notification(session, note, now)


async def apply_notification_job(context: Context, job: ClaimedJob) -> None:
    publisher_id = int(job.payload["publisherId"])
    notification_id = int(job.payload["notificationId"])
    async with unit_of_work(context.sessions) as session:
        await apply_stored(session, publisher_id, notification_id, context.clock.now())
        await queue.complete(session, job.id)
        context.wake_workers_after_commit(session)  # the webhook deliveries it wrote
