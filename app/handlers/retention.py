"""The `retention` job: one pass (docs/api.md §8), then it schedules its own next run. Being one row of
the queue, it runs in one process at a time, whatever the number of processes."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.context import Context
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.retention import service

log = logging.getLogger(__name__)

EVERY = timedelta(hours=6)


async def run_retention_job(context: Context, job: ClaimedJob) -> None:
    now = context.clock.now()
    before = now - timedelta(days=context.settings.retention_days)
    deleted = await service.purge(context.db, before)
    log.info("retention pass", extra={"fields": {"before": before.isoformat(), **deleted}})
    await queue.reschedule(context.db, job.id, now + EVERY, None)
