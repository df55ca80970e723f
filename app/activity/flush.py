"""A process's counts into `activity_minutes`, with the queue sampled once a minute."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.activity import repository
from app.activity.tally import ALL_PUBLISHERS, Count, Key, Tally, minute_of
from app.db import Executor
from app.enums import ActivityMetric
from app.jobs import queue

KEEP = timedelta(days=2)  # the charts show a day at most
PRUNE_EVERY = timedelta(minutes=10)


async def _queue_sample(db: Executor, tally: Tally, now: datetime) -> list[Count]:
    """The due jobs of each kind and the oldest one's age, once per minute and process."""
    minute = minute_of(now)
    if tally.sampled_minute == minute:
        return []
    tally.sampled_minute = minute
    samples = []
    for kind, due, oldest in await queue.due_by_kind(db, now):
        age_ms = max(int((now - oldest).total_seconds() * 1000), 0)
        key = Key(ALL_PUBLISHERS, minute, ActivityMetric.QUEUE, kind)
        samples.append(Count(key, due, age_ms))
    if not samples:  # an empty queue is a sample too: depth 0
        key = Key(ALL_PUBLISHERS, minute, ActivityMetric.QUEUE, "")
        samples.append(Count(key, 0, 0))
    return samples


async def flush(db: Executor, tally: Tally, now: datetime) -> None:
    """Write what the tally holds (and the queue's sample); what cannot be written is put back
    for the next flush before the error goes on."""
    counts = tally.take()
    try:
        counts += await _queue_sample(db, tally, now)
        await repository.write(db, sorted(counts, key=lambda c: c.key))
    except BaseException:
        tally.put_back(counts)
        raise
    if tally.pruned_at is None or now - tally.pruned_at >= PRUNE_EVERY:
        tally.pruned_at = now
        await repository.prune(db, now - KEEP)
