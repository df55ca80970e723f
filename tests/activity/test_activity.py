"""Each process counts what it did per minute in memory and adds it to `activity_minutes`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from app.activity import repository
from app.activity.flush import flush
from app.activity.tally import ALL_PUBLISHERS, Tally
from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.db import Executor, Row
from app.enums import ActivityMetric
from app.jobs.worker import Worker
from tests.helpers.api import running
from tests.helpers.receiver import Receiver
from tests.helpers.shop import Shop
from tests.helpers.webhooks import context_of, subscribe


async def _counts(db: Executor, publisher_id: int, metric: ActivityMetric) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT label, sum(count) AS n FROM activity_minutes"
        " WHERE publisher_id = $1 AND metric = $2 GROUP BY label",
        publisher_id,
        metric,
    )
    return {str(row["label"]): int(row["n"]) for row in rows}


async def test_a_sync_its_apple_calls_and_its_webhooks_are_counted(
    shop: Shop, worker: Worker, receiver: Receiver
) -> None:
    await subscribe(shop.client, shop.publisher, receiver, ["activity"])
    bought = await shop.purchase()
    await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    context = shop.context
    await flush(context.db, context.activity, context.clock.now())
    pid = shop.publisher.id
    assert await _counts(context.db, pid, ActivityMetric.SYNC) == {"SUBSCRIPTION_CREATED": 1}
    assert await _counts(context.db, pid, ActivityMetric.APPLE) == {
        "get_all_subscription_statuses ok": 1,
    }
    assert await _counts(context.db, pid, ActivityMetric.WEBHOOK) == {"2xx": 1}
    everyone = await _counts(context.db, ALL_PUBLISHERS, ActivityMetric.SYNC)
    assert everyone["SUBSCRIPTION_CREATED"] >= 1


async def test_a_call_apple_refuses_is_counted_by_its_code(shop: Shop, worker: Worker) -> None:
    await shop.accepted(shop.customers[0], "2000000999999998")
    assert await worker.drain() == 1
    context = shop.context
    await flush(context.db, context.activity, context.clock.now())
    pid = shop.publisher.id
    assert await _counts(context.db, pid, ActivityMetric.APPLE) == {
        "get_all_subscription_statuses 4040010": 1
    }
    assert await _counts(context.db, pid, ActivityMetric.SYNC) == {"TRANSACTION_ID_NOT_FOUND": 1}


async def test_flushes_add_up_per_minute(context: Context) -> None:
    clock = MovableClock(datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC))
    first, second = Tally(clock), Tally(clock)
    pid = 990_000_001
    for tally in (first, second, first):
        tally.count(pid, ActivityMetric.WEBHOOK, "5xx", 40)
    await flush(context.db, first, clock.now())
    await flush(context.db, second, clock.now())
    row = await context.db.fetchrow(
        "SELECT minute, count, total_ms FROM activity_minutes WHERE publisher_id = $1", pid
    )
    assert row is not None
    assert (row["minute"], row["count"], row["total_ms"]) == (
        datetime(2031, 5, 4, 3, 2, tzinfo=UTC),
        3,
        120,
    )
    assert len(first) == 0


class _Down:
    """A database that cannot be reached."""

    async def execute(self, query: str, *args: object) -> str:
        raise ConnectionRefusedError

    async def fetch(self, query: str, *args: object) -> Sequence[Row]:
        raise ConnectionRefusedError

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        raise ConnectionRefusedError

    async def fetchval(self, query: str, *args: object) -> object:
        raise ConnectionRefusedError


async def test_counts_that_could_not_be_written_wait_for_the_next_flush(
    context: Context,
) -> None:
    clock = MovableClock(datetime(2031, 5, 4, 4, 0, tzinfo=UTC))
    tally = Tally(clock)
    pid = 990_000_002
    tally.count(pid, ActivityMetric.SYNC, "SUBSCRIPTION_CREATED")
    with pytest.raises(ConnectionRefusedError):
        await flush(_Down(), tally, clock.now())
    assert len(tally) == 2  # the publisher's and the total
    await flush(context.db, tally, clock.now())
    assert await _counts(context.db, pid, ActivityMetric.SYNC) == {"SUBSCRIPTION_CREATED": 1}


async def test_the_queue_is_sampled_once_a_minute_at_its_highest(context: Context) -> None:
    clock = MovableClock(datetime(2031, 5, 4, 5, 0, tzinfo=UTC))
    tally = Tally(clock)
    await context.db.execute("DELETE FROM jobs")
    await context.db.execute(
        "INSERT INTO jobs (kind, payload, run_at, attempts, created_at)"
        " VALUES ('sync', '{}', $1, 0, $1), ('sync', '{}', $2, 0, $2)",
        clock.now() - timedelta(seconds=30),
        clock.now() - timedelta(seconds=5),
    )
    await flush(context.db, tally, clock.now())
    await context.db.execute("DELETE FROM jobs")
    await flush(context.db, tally, clock.now())  # the same minute: not sampled again
    points = await repository.series(
        context.db,
        ALL_PUBLISHERS,
        [ActivityMetric.QUEUE],
        clock.now(),
        clock.now() + timedelta(minutes=1),
        timedelta(minutes=1),
    )
    assert [(p.label, p.peak, p.peak_ms) for p in points] == [("sync", 2, 30_000)]
    clock.advance(60)
    await flush(context.db, tally, clock.now())
    points = await repository.series(
        context.db,
        ALL_PUBLISHERS,
        [ActivityMetric.QUEUE],
        clock.now(),
        clock.now() + timedelta(minutes=1),
        timedelta(minutes=1),
    )
    assert [(p.label, p.peak) for p in points] == [("", 0)]


async def test_a_stopping_process_writes_what_it_counted(settings: Settings) -> None:
    clock = MovableClock(datetime(2031, 5, 4, 6, 0, tzinfo=UTC))
    pid = 990_000_003
    async with running(settings, clock) as (app, _):
        context_of(app).activity.count(pid, ActivityMetric.SYNC, "OFFER_NOT_FOUND")
        db = context_of(app).db
        assert await _counts(db, pid, ActivityMetric.SYNC) == {}
    async with running(settings, clock) as (app, _):
        counted = await _counts(context_of(app).db, pid, ActivityMetric.SYNC)
    assert counted == {"OFFER_NOT_FOUND": 1}
