"""docs/api.md §8: finished records older than RETENTION_DAYS go, in small batches, from one process at
a time; subscriptions, customers and anything unfinished stay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.enums import JobKind
from app.jobs import queue
from app.notifications import repository as notifications
from app.reconcile import repository as reconcile
from app.retention import service
from tests.helpers.appstore import Apple

DAYS = timedelta(days=1)


@pytest.fixture
def settings(shop_settings: Settings) -> Settings:
    return shop_settings


async def _count(context: Context, table: str, publisher_id: int) -> int:
    sql = f"SELECT count(*) FROM {table} WHERE publisher_id = $1"  # noqa: S608 (a test's tables)
    return int(await context.db.fetchval(sql, publisher_id))


async def test_a_pass_deletes_what_finished_long_ago_and_keeps_the_rest(
    apple: Apple, clock: MovableClock
) -> None:
    context, shop = apple.shop.context, apple.shop
    clock.advance(-100 * 86_400)  # long ago:
    old, customer = await apple.subscribed()  # a finalized sync
    await apple.act(old["transactionId"], "renew")  # an applied notification
    assert await apple.worker.drain() == 1
    waiting = await shop.purchase()
    unfinished = await shop.accepted(shop.customers[1], waiting["transactionId"])
    await context.db.execute("DELETE FROM jobs")  # and it never runs: it stays unfinished
    old_pass = await reconcile.begin_pass(context.db, "a reconciliation pass", clock.now())
    token = f"old-test-{old_pass}"
    await notifications.save_test(
        context.db, shop.publisher.id, token, shop.bundle_id, "Sandbox", clock.now()
    )
    clock.advance(100 * 86_400)  # now:
    await apple.subscribed()
    await queue.ensure_periodic(context.db, JobKind.RETENTION, clock.now())
    assert await apple.worker.drain() == 1
    pid = shop.publisher.id
    assert await _count(context, "synchronizations", pid) == 2  # the recent one and unfinished
    assert (await shop.poll(unfinished))["status"] == "processing"
    assert await _count(context, "apple_notifications", pid) == 0
    assert await _count(context, "apple_test_notifications", pid) == 0
    passes = "SELECT count(*) FROM reconcile_passes WHERE id = $1"
    assert await context.db.fetchval(passes, old_pass) == 0
    assert await _count(context, "subscriptions", pid) == 2, "subscriptions are never deleted"
    assert (await apple.access(customer))["accessGranted"] is True
    next_run = await context.db.fetchval("SELECT run_at FROM jobs WHERE singleton = 'retention'")
    assert next_run == clock.now() + timedelta(hours=6), "it schedules its own next pass"


async def test_small_batches_and_one_row_per_periodic_job(
    apple: Apple, clock: MovableClock
) -> None:
    context, shop = apple.shop.context, apple.shop
    clock.advance(-100 * 86_400)
    for _ in range(5):
        await apple.subscribed()
    clock.advance(100 * 86_400)
    batches: list[int] = []
    original = service.PURGES[0][1]

    async def counted(db: object, before: object, limit: int) -> int:
        deleted = await original(db, before, limit)  # type: ignore[arg-type]
        batches.append(deleted)
        return deleted

    deleted = await service._drain(context.db, counted, clock.now() - 90 * DAYS, 2)
    assert deleted >= 5 and max(batches) == 2 and batches[-1] < 2, batches
    assert await _count(context, "synchronizations", shop.publisher.id) == 0
    for _ in range(3):  # however many processes start: one row, one pass at a time
        await queue.ensure_periodic(context.db, JobKind.RETENTION, clock.now())
    rows = await context.db.fetchval("SELECT count(*) FROM jobs WHERE kind = 'retention'")
    assert rows == 1
