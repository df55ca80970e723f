"""Transient Apple failures, the retry schedule and leases, all on the injected clock."""

from __future__ import annotations

from datetime import datetime

from app.clock import MovableClock
from app.jobs import queue
from app.jobs.worker import Worker
from app.runtime import make_worker
from tests.helpers.shop import Shop


async def _job_run_at(shop: Shop, sync_id: str) -> datetime | None:
    value = await shop.context.db.fetchval(
        "SELECT run_at FROM jobs WHERE payload->>'synchronizationId' = $1", sync_id
    )
    return value if isinstance(value, datetime) else None


async def test_transient_failures_retry_then_finalize(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    bought = await shop.purchase()
    await shop.fault("server_error", transactionId=bought["transactionId"], times=2)
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    assert (await shop.poll(sync_id))["status"] == "retrying"
    run_at = await _job_run_at(shop, sync_id)
    assert run_at is not None
    assert (run_at - clock.now()).total_seconds() == 1.0
    assert await worker.drain() == 0, "not due before the schedule says"
    clock.advance(1)
    assert await worker.drain() == 1
    assert (await shop.poll(sync_id))["status"] == "retrying"
    clock.advance(4)
    assert await worker.drain() == 0
    clock.advance(1)
    assert await worker.drain() == 1
    polled = await shop.poll(sync_id)
    assert polled["status"] == "finalized"
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert await _job_run_at(shop, sync_id) is None, "the job is gone once the sync is final"


async def test_apple_failing_for_good_is_apple_unavailable(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    bought = await shop.purchase()
    await shop.fault("server_error", transactionId=bought["transactionId"])
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    for delay in (0, 1, 5, 30):  # four tries: the first, then one per entry of (1, 5, 30)
        clock.advance(delay)
        assert await worker.drain() == 1
    polled = await shop.poll(sync_id)
    assert polled["status"] == "finalized"
    assert polled["result"] == "APPLE_UNAVAILABLE"
    assert polled["accessGranted"] is False
    topics = [topic for topic, _ in await shop.events(sync_id)]
    assert topics == ["inappPurchaseValidationFailed", "inappPurchaseSyncResult"]


async def test_retry_after_of_a_429_is_honoured(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    bought = await shop.purchase()
    await shop.fault(
        "rate_limit", transactionId=bought["transactionId"], times=1, retryAfterMs=60_000
    )
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    run_at = await _job_run_at(shop, sync_id)
    assert run_at is not None
    assert (run_at - clock.now()).total_seconds() >= 55, (
        "Retry-After (60 s) beats the schedule (1 s)"
    )
    clock.advance(2)
    assert await worker.drain() == 0
    clock.advance(60)
    assert await worker.drain() == 1
    assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"


async def test_dropped_connections_are_transient(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    bought = await shop.purchase()
    await shop.fault("drop", transactionId=bought["transactionId"], times=1)
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    await worker.drain()
    assert (await shop.poll(sync_id))["status"] == "retrying"
    clock.advance(1)
    await worker.drain()
    assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"


async def test_a_dead_workers_job_runs_again_after_its_lease(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    # a worker claims it, then dies
    claimed = await queue.claim(shop.context.db, "dead-worker", clock.now(), 100)
    assert any(job.payload["synchronizationId"] == sync_id for job in claimed)
    assert await worker.drain() == 0, "the lease still holds"
    clock.advance(queue.LEASE.total_seconds() + 1)
    assert await worker.drain() >= 1
    assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"


async def test_a_crashing_handler_keeps_its_job(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    db = shop.context.db
    job_id = await queue.enqueue(db, "no-such-kind", {"x": 1}, clock.now())
    assert await worker.drain() >= 1
    row = await db.fetchrow("SELECT run_at, last_error, locked_by FROM jobs WHERE id = $1", job_id)
    assert row is not None
    assert (row["run_at"] - clock.now()).total_seconds() == 2.0
    assert "no handler" in row["last_error"]
    assert row["locked_by"] is None
    await queue.complete(db, job_id)


async def test_integration_switched_off_after_the_202_retries(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    from tests.helpers.api import ADMIN

    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    url = f"/admin/publishers/{shop.publisher.id}/storekit2"
    assert (await shop.client.delete(url, headers=ADMIN)).status_code == 204
    await worker.drain()
    assert (await shop.poll(sync_id))["status"] == "retrying"


async def test_stopping_hands_back_what_it_cannot_finish(shop: Shop, clock: MovableClock) -> None:
    import asyncio

    bought = await shop.purchase()
    await shop.fault("delay", transactionId=bought["transactionId"], delaySeconds=5.0)
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    worker = make_worker(shop.context, poll_interval=0.05)
    running = asyncio.create_task(worker.run(grace=0.2))
    deadline = asyncio.get_running_loop().time() + 10
    while not worker._running:
        assert asyncio.get_running_loop().time() < deadline, "the worker never claimed the job"
        await asyncio.sleep(0.02)
    worker.stop()
    await asyncio.wait_for(running, 5)
    held = await shop.context.db.fetchrow(
        "SELECT locked_by, attempts FROM jobs WHERE payload->>'synchronizationId' = $1", sync_id
    )
    assert held is not None
    locked_by, attempts = held["locked_by"], held["attempts"]
    assert locked_by is None, "released at once, not left to its lease"
    assert attempts == 0, "a released job's try is not counted"
    assert (await shop.poll(sync_id))["status"] == "processing"


async def test_an_unexpected_answer_counts_against_the_schedule(
    shop: Shop, worker: Worker, clock: MovableClock
) -> None:
    """A 2xx that is not JSON (a proxy's error page) must not leave the sync unfinalized forever."""
    import respx

    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r".*/inApps/v1/(transactions|subscriptions)/.*").respond(
            200, text="<html>bad gateway</html>", headers={"content-type": "text/html"}
        )
        mock.route().pass_through()
        for delay in (0, 1, 5, 30):
            clock.advance(delay)
            assert await worker.drain() == 1
            status = (await shop.poll(sync_id))["status"]
            assert status == ("finalized" if delay == 30 else "retrying")
    assert (await shop.poll(sync_id))["result"] == "APPLE_UNAVAILABLE"
    assert (await shop.register(shop.customers[0], bought["transactionId"])).status_code == 202
