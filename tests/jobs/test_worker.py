"""The job worker: the API goes first (a busy API leaves its worker a few jobs at a time, never
none), and a worker runs on any host."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.api.middleware import RequestMetrics
from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.jobs.worker import Foreground, Worker
from tests.helpers.api import make_settings

KIND = "test_hold"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir, run_worker=False)


async def _until(check: Callable[[], bool]) -> None:
    """Polls `check`: the worker has no event to await for how many jobs it runs."""
    async with asyncio.timeout(5.0):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class Held:
    """A job handler that holds each job until released, noting how many run at once."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.running: set[int] = set()
        self.done: set[int] = set()
        self.release = asyncio.Event()

    async def __call__(self, job: ClaimedJob) -> None:
        self.running.add(job.id)
        await self.release.wait()
        await queue.complete(self.context.db, job.id)
        self.running.discard(job.id)
        self.done.add(job.id)


@pytest.fixture
async def context(context: Context) -> AsyncIterator[Context]:
    """The app's context, over a queue emptied before and after."""
    await context.db.execute("DELETE FROM jobs")
    yield context
    await context.db.execute("DELETE FROM jobs")


async def _enqueue(context: Context, count: int) -> None:
    for _ in range(count):
        await queue.enqueue(context.db, KIND, {}, context.clock.now())


def test_a_busy_api_leaves_the_worker_a_few_jobs_and_never_none() -> None:
    foreground = Foreground(busy_at=3, busy_jobs=2)
    assert foreground.jobs_allowed(16) == 16
    for _ in range(3):
        foreground.enter()
    assert foreground.jobs_allowed(16) == 2
    assert foreground.jobs_allowed(1) == 1
    foreground.leave()
    assert foreground.jobs_allowed(16) == 16


async def test_the_worker_slows_down_while_the_api_is_busy_and_catches_up_after(
    context: Context,
) -> None:
    await _enqueue(context, 8)
    foreground, held = Foreground(busy_at=1, busy_jobs=2), Held(context)
    foreground.enter()  # a request in flight
    worker = Worker(
        context.db,
        context.clock,
        {KIND: held},
        concurrency=6,
        poll_interval=0.05,
        foreground=foreground,
    )
    task = asyncio.create_task(worker.run())
    try:
        await _until(lambda: len(held.running) == 2)
        looked = worker.rounds
        await _until(lambda: worker.rounds >= looked + 6)  # six more looks for work:
        assert len(held.running) == 2  # it stays at two while the API is busy
        foreground.leave()
        await _until(lambda: len(held.running) == 6)
        held.release.set()
        await _until(lambda: len(held.done) == 8)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    assert await context.db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_every_request_counts_as_in_flight_until_it_is_answered() -> None:
    seen: list[int] = []
    foreground = Foreground()
    before = foreground.in_flight

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(foreground.in_flight)
        raise RuntimeError("even a request that fails is counted out")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(RuntimeError):
        await RequestMetrics(endpoint, foreground)(scope, receive, send)
    assert seen == [before + 1]
    assert foreground.in_flight == before


async def test_a_worker_on_a_host_with_the_longest_name_claims_and_renews_its_jobs(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 253)  # a fully qualified name

    async def complete(job: ClaimedJob) -> None:
        await queue.complete(context.db, job.id)

    worker = Worker(context.db, context.clock, {KIND: complete})
    assert len(worker.id) > 253
    await _enqueue(context, 3)
    claimed = await queue.claim(context.db, worker.id, context.clock.now(), 1)
    await queue.heartbeat(context.db, worker.id, [claimed[0].id], context.clock.now())
    holder = await context.db.fetchval("SELECT locked_by FROM jobs WHERE id = $1", claimed[0].id)
    assert holder == worker.id
    await queue.complete(context.db, claimed[0].id)
    assert await worker.drain() == 2
    assert await context.db.fetchval("SELECT count(*) FROM jobs") == 0


class Periodic:
    """A periodic job's handler: runs to its end and reschedules itself, or fails while told to."""

    every = timedelta(minutes=15)

    def __init__(self, context: Context) -> None:
        self.context = context
        self.failing = False

    async def __call__(self, job: ClaimedJob) -> None:
        if self.failing:
            raise RuntimeError("the database went away mid-run")
        run_at = self.context.clock.now() + self.every
        assert await queue.reschedule_held(self.context.db, job.id, job.attempts, run_at, None)


async def _delay_after_run(context: Context, worker: Worker) -> timedelta:
    """Run the periodic job now; how long until it is due again."""
    clock = context.clock
    assert isinstance(clock, MovableClock)
    await queue.ensure_periodic(context.db, KIND, clock.now())
    assert await worker.drain() == 1
    run_at = await context.db.fetchval("SELECT run_at FROM jobs WHERE singleton = $1", KIND)
    delay: timedelta = run_at - clock.now()
    clock.advance(delay.total_seconds())
    return delay


async def test_a_periodic_job_that_fails_after_many_runs_is_retried_soon(
    context: Context,
) -> None:
    handler = Periodic(context)
    worker = Worker(context.db, context.clock, {KIND: handler})
    for _ in range(20):  # five hours of runs, every one claimed and rescheduled
        assert await _delay_after_run(context, worker) == Periodic.every
    handler.failing = True
    delays = [await _delay_after_run(context, worker) for _ in range(3)]
    assert delays == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    handler.failing = False
    assert await _delay_after_run(context, worker) == Periodic.every
    handler.failing = True
    assert await _delay_after_run(context, worker) == timedelta(seconds=2), "counted afresh"
