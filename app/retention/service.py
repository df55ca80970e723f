"""One retention pass: every kind of finished record older than the cutoff, a batch at a time,
each batch a transaction of its own (a pass never holds locks for long, and one interrupted
midway has kept what it did). Subscriptions and customers are never deleted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from app.db import Executor
from app.notifications import repository as notifications
from app.purchases import repository as purchases
from app.reconcile import repository as reconcile
from app.webhooks import repository as webhooks

BATCH = 1000
Purge = Callable[[Executor, datetime, int], Awaitable[int]]

# In this order: deliveries before the events they belong to.
PURGES: tuple[tuple[str, Purge], ...] = (
    ("synchronizations", purchases.purge_finalized),
    ("webhook deliveries", webhooks.purge_settled),
    ("webhook events", webhooks.purge_events),
    ("apple notifications", notifications.purge_done),
    ("apple test notifications", notifications.purge_tests),
    ("reconcile passes", reconcile.purge_passes),
    ("register failures", purchases.purge_failures),
)


async def _drain(db: Executor, purge: Purge, before: datetime, batch: int) -> int:
    total = 0
    while (deleted := await purge(db, before, batch)) > 0:
        total += deleted
        if deleted < batch:
            break
    return total


async def purge(db: Executor, before: datetime, batch: int = BATCH) -> dict[str, int]:
    """Delete what finished before `before`; how many of each kind."""
    return {name: await _drain(db, each, before, batch) for name, each in PURGES}
