"""The `webhook_delivery` job: one attempt of one delivery (`WebhookSender.run_job`)."""

from __future__ import annotations

from app.context import Context
from app.jobs.queue import ClaimedJob


async def deliver_job(context: Context, job: ClaimedJob) -> None:
    await context.webhooks.run_job(job)
