"""The job runner: claims due jobs, runs their handlers, keeps their leases, stops cleanly.

Any number of workers, in any number of processes, share one database. A handler owns the fate of
its job: it completes or reschedules it in the same transaction as its effects. A handler that
raises gets its job rescheduled with a backoff, so nothing accepted is ever dropped. Handlers are
bound to the running service by whoever builds the worker (`app.runtime`): the runner knows only
job kinds and functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from app.clock import Clock
from app.db import Database, DatabaseUnavailable
from app.jobs import queue
from app.jobs.queue import ClaimedJob

log = logging.getLogger(__name__)

Handler = Callable[[ClaimedJob], Awaitable[None]]
MAX_BACKOFF = 3600.0
BUSY_AT = 16  # requests in flight
BUSY_JOBS = 2
LISTEN_RETRY_SECONDS = 2.0


def crash_backoff(failures: int) -> float:
    """Delay before a job whose handler crashed `failures` times in a row runs again: 2, 4, 8 …
    seconds, at most an hour."""
    return float(min(2 ** min(failures, 12), MAX_BACKOFF))


class Foreground:
    """The API goes first: requests in flight in this process, and what that leaves its worker.

    `serve` runs the API and a worker in one process (docs/api.md §10), on one core. Under a burst of
    requests, a worker at its full concurrency takes about half of that core and every 202 waits
    behind syncs. So while `busy_at` or more requests are in flight, the worker runs at most
    `busy_jobs` jobs at once (never none: the queue keeps moving), and goes back to its full
    concurrency as the burst ends. A process with no API counts no requests.
    """

    def __init__(self, busy_at: int = BUSY_AT, busy_jobs: int = BUSY_JOBS) -> None:
        self.busy_at, self.busy_jobs = busy_at, busy_jobs
        self.in_flight = 0

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    def jobs_allowed(self, concurrency: int) -> int:
        """How many jobs the worker may run at once now, out of its `concurrency`."""
        if self.in_flight >= self.busy_at:
            return min(concurrency, self.busy_jobs)
        return concurrency


def holder_id(role: str) -> str:
    """Who holds a job: host, process, and a role or object within it."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


class Worker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        handlers: dict[str, Handler],
        *,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        lease: timedelta = queue.LEASE,
        foreground: Foreground | None = None,
    ) -> None:
        self.db, self.clock, self.handlers = db, clock, handlers
        self.foreground = foreground or Foreground()
        self.concurrency, self.poll_interval, self.lease = concurrency, poll_interval, lease
        self.id = holder_id(f"{id(self):x}")
        self._running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._backlog = False
        self._listen_again_at = 0.0
        self.rounds = 0  # how many times it has looked for work (for tests and diagnostics)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, grace: float = 10.0) -> None:
        """Run until `stop()`; then finish what is held within `grace` seconds, release the rest."""
        await self._listen()
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while not self._stopping.is_set():
                await self._fill()
                await self._idle()
                await self._keep_listening()
                self.rounds += 1
        finally:
            heartbeat.cancel()
            await self._shutdown(grace)
            await self._unlisten()

    async def drain(self) -> int:
        """Run every job that is due now, until none is left; return how many ran (for tests)."""
        total = 0
        while claimed := await self._claim(self.concurrency):
            await asyncio.gather(*(self._execute(job) for job in claimed))
            total += len(claimed)
        return total

    async def _fill(self) -> None:
        free = self.foreground.jobs_allowed(self.concurrency) - len(self._running)
        if free <= 0:
            return
        try:
            claimed = await self._claim(free)
        except DatabaseUnavailable as exc:
            log.warning("claiming jobs failed (%s); will try again", exc)
            return
        except Exception:
            log.exception("claiming jobs failed; will try again")
            return
        for job in claimed:
            task = asyncio.create_task(self._execute(job))
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._done, job.id))
        # A full claim means more may be waiting: claim again as soon as a slot frees. Otherwise
        # the queue was drained, and only new work (a wake-up) or the poll brings more.
        self._backlog = len(claimed) == free

    def _done(self, job_id: int, _: object = None) -> None:
        self._running.pop(job_id, None)
        if self._backlog:
            self._wake.set()

    async def _idle(self) -> None:
        if self.foreground.jobs_allowed(self.concurrency) - len(self._running) <= 0:
            self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        self._wake.clear()

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        return await queue.claim(self.db, self.id, self.clock.now(), limit, self.lease)

    async def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable as exc:  # it runs again: rescheduled, or when its lease ends
            log.warning("job %s (%s) interrupted: %s", job.id, job.kind, exc)
            await self._reschedule_after_crash(job, exc)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            await self._reschedule_after_crash(job, exc)

    async def _reschedule_after_crash(self, job: ClaimedJob, exc: Exception) -> None:
        run_at = self.clock.now() + timedelta(seconds=crash_backoff(job.failures + 1))
        with contextlib.suppress(Exception):  # if even this fails, the lease runs out instead
            await queue.failed(self.db, job.id, run_at, f"{type(exc).__name__}: {exc}")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            with contextlib.suppress(Exception):
                await self.heartbeat()

    async def heartbeat(self) -> None:
        now = self.clock.now()
        await queue.heartbeat(self.db, self.id, list(self._running), now, self.lease)

    async def _shutdown(self, grace: float) -> None:
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            held = [job_id for job_id, task in self._running.items() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(Exception):
                await queue.release(self.db, self.id, held)

    async def _listen(self) -> None:
        """LISTEN for wake-ups on a connection of its own; polling covers any gap."""
        try:
            self._listener = await asyncpg.connect(self.db.url, timeout=5)
            await self._listener.add_listener(queue.WAKE_CHANNEL, self._on_notify)
        except Exception:
            log.warning("LISTEN unavailable; the worker polls every %ss", self.poll_interval)
            self._listener = None

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _keep_listening(self) -> None:
        """A LISTEN connection lost with the database is made again, at most every few seconds
        (polling covers the gap); then the worker looks for work at once, in case it missed any."""
        if self._listener is not None and not self._listener.is_closed():
            return
        now = asyncio.get_running_loop().time()
        if now < self._listen_again_at:
            return
        self._listen_again_at = now + LISTEN_RETRY_SECONDS
        await self._unlisten()
        await self._listen()
        if self._listener is not None:
            self._wake.set()

    async def _unlisten(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)


class Waker:
    """Wakes workers after jobs are committed: the ones in this process at once, the others
    with one NOTIFY per burst (coalesced), not one per job."""

    def __init__(self, db: Database, min_interval: float = 0.02) -> None:
        self.db, self.min_interval = db, min_interval
        self._local: list[Callable[[], None]] = []
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add_local(self, wake: Callable[[], None]) -> None:
        """A worker of this process, woken directly rather than through PostgreSQL."""
        self._local.append(wake)

    def poke(self) -> None:
        for wake in self._local:
            wake()
        self._pending.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._notify_loop())

    async def _notify_loop(self) -> None:
        while self._pending.is_set():
            self._pending.clear()
            with contextlib.suppress(Exception):
                await queue.wake(self.db)
            await asyncio.sleep(self.min_interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
