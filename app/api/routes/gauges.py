"""The database's gauges for /metrics: syncs not finalized, due jobs, webhook deliveries not
settled as succeeded. Three small queries on partial or queue indexes, at most every 5 seconds
(`Context.gauges`)."""

from __future__ import annotations

from datetime import datetime

from app.db import Executor
from app.jobs import queue
from app.metrics import DELIVERIES, JOBS_DUE, JOBS_OLDEST, SYNCS
from app.purchases import repository as purchases
from app.webhooks import repository as webhooks


async def refresh(db: Executor, now: datetime) -> None:
    syncs = await purchases.count_unfinalized(db)
    jobs = await queue.due_by_kind(db, now)
    deliveries = await webhooks.count_unsettled(db)
    SYNCS.clear()
    for status, count in syncs.items():
        SYNCS.labels(status).set(count)
    JOBS_DUE.clear()
    JOBS_OLDEST.clear()
    for kind, due, oldest in jobs:
        JOBS_DUE.labels(kind).set(due)
        JOBS_OLDEST.labels(kind).set(max((now - oldest).total_seconds(), 0.0))
    DELIVERIES.clear()
    for status, count in deliveries.items():
        DELIVERIES.labels(status).set(count)
