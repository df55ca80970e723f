"""The `apple_notification` job: apply one stored notification, once, in one transaction.

Its webhook events are written held for this process, which sends them after the commit."""

from __future__ import annotations

from app.context import Context
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.notifications import service
from app.webhooks import outbox


async def apply_notification_job(context: Context, job: ClaimedJob) -> None:
    publisher_id = int(job.payload["publisherId"])
    notification_id = int(job.payload["notificationId"])
    now = context.clock.now()
    async with context.db.transaction() as tx:
        events = await service.apply_stored(tx, publisher_id, notification_id, now)
        held = await outbox.write(tx, publisher_id, events, now, context.webhooks.hold(now))
        await queue.complete(tx, job.id)
    await context.webhooks.deliver_held(held)
