"""The running service of one process: its parts built once, the job worker, the job registry.

`Runtime.started` builds the typed `Context` (the pool, Apple's clients, the webhook sender, the
waker), starts the worker when asked, and takes it all down in reverse order. Every job kind is
bound to its handler here, where the runtime is assembled, not in `app.jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from app.activity.flush import flush as flush_activity
from app.activity.tally import Tally
from app.admin.tokens import PublisherTokens
from app.apple.budget import Budget
from app.apple.gateway import AppleGateway
from app.clock import Clock, SystemClock
from app.config import Settings
from app.context import Context
from app.db import Database, DatabaseUnavailable, resolve_database_url
from app.enums import JobKind
from app.handlers.deliveries import deliver_job
from app.handlers.notifications import apply_notification_job
from app.handlers.reconcile import run_reconcile_job
from app.handlers.retention import run_retention_job
from app.handlers.sync import run_sync_job
from app.jobs import queue
from app.jobs.worker import Foreground, Handler, Waker, Worker
from app.metrics import GAUGES_EVERY, AtMostEvery
from app.security import SecretBox, load_secret_key, load_signing_key
from app.sessions import SessionSigner, SignInLimiter
from app.webhooks.delivery import WebhookSender

log = logging.getLogger(__name__)

ACTIVITY_FLUSH_SECONDS = 5.0  # how often this process adds its counts to `activity_minutes`
LAST_FLUSH_TIMEOUT = 3.0  # the flush of a stopping process: no longer than this


def job_handlers(context: Context) -> dict[str, Handler]:
    """Every kind of job the worker knows, bound to the running service."""
    return {
        JobKind.SYNC: functools.partial(run_sync_job, context),
        JobKind.WEBHOOK_DELIVERY: functools.partial(deliver_job, context),
        JobKind.APPLE_NOTIFICATION: functools.partial(apply_notification_job, context),
        JobKind.RETENTION: functools.partial(run_retention_job, context),
        JobKind.RECONCILE: functools.partial(run_reconcile_job, context),
    }


PERIODIC = (JobKind.RETENTION, JobKind.RECONCILE)


async def ensure_periodic(context: Context) -> None:
    """Every periodic job exists and is due now (a pass at start). Best effort: a process that
    starts while its database is away leaves it to the next start, and the rows, once made, stay."""
    try:
        for kind in PERIODIC:
            await queue.ensure_periodic(context.db, kind, context.clock.now())
    except DatabaseUnavailable as exc:
        log.warning("periodic jobs not ensured: %s", exc)


def make_worker(context: Context, **options: object) -> Worker:
    """A worker of this process's jobs; `options` as `Worker`'s (tests set a few)."""
    settings = context.settings
    defaults: dict[str, object] = {
        "concurrency": settings.worker_concurrency,
        "lease": timedelta(seconds=settings.job_lease_seconds),
        "foreground": context.foreground,
    }
    worker = Worker(context.db, context.clock, job_handlers(context), **{**defaults, **options})  # type: ignore[arg-type]
    context.waker.add_local(worker.wake)
    return worker


async def build_context(
    settings: Settings, clock: Clock | None = None, foreground: Foreground | None = None
) -> Context:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    db = await Database.open(resolve_database_url(settings.database_url, settings.data_dir))
    key = load_secret_key(settings.secret_key, settings.data_dir)
    secrets = SecretBox(key, settings.secret_key_previous)
    waker = Waker(db)
    activity = Tally(clock)
    return Context(
        settings=settings,
        clock=clock,
        db=db,
        secrets=secrets,
        signing_key=load_signing_key(
            settings.jwt_private_key, settings.data_dir, settings.jwt_private_key_previous
        ),
        apple=AppleGateway(settings, Budget(settings, db, clock), activity),
        webhooks=WebhookSender(settings, secrets, db, clock, waker.poke, activity),
        waker=waker,
        foreground=foreground or Foreground(),
        tokens=PublisherTokens(db, clock),
        gauges=AtMostEvery(GAUGES_EVERY, clock),
        activity=activity,
        sessions=SessionSigner(key),
        sign_ins=SignInLimiter(),
    )


async def close_context(context: Context) -> None:
    await context.tokens.close()
    await context.webhooks.close()
    await context.waker.close()
    await context.apple.close()
    await context.db.close()


async def _flush_activity(context: Context) -> None:
    try:
        await flush_activity(context.db, context.activity, context.clock.now())
    except Exception as exc:  # kept for the next flush; the charts can wait
        log.warning("activity not recorded: %s", type(exc).__name__)


async def _record_activity(context: Context) -> None:
    """This process's counts into `activity_minutes`, every few seconds, until cancelled."""
    while True:
        await asyncio.sleep(ACTIVITY_FLUSH_SECONDS)
        await _flush_activity(context)


class Runtime:
    """A started process: its context, its worker when it runs one, its activity recorder."""

    def __init__(self, context: Context, worker: Worker | None) -> None:
        self.context, self.worker = context, worker
        self._task = asyncio.create_task(worker.run()) if worker is not None else None
        self._recorder = asyncio.create_task(_record_activity(context))

    @classmethod
    @asynccontextmanager
    async def started(
        cls,
        settings: Settings,
        clock: Clock | None = None,
        foreground: Foreground | None = None,
        *,
        run_worker: bool | None = None,
    ) -> AsyncIterator[Runtime]:
        context = await build_context(settings, clock, foreground)
        wanted = settings.run_worker if run_worker is None else run_worker
        if wanted:
            await ensure_periodic(context)
        runtime = cls(context, make_worker(context) if wanted else None)
        try:
            yield runtime
        finally:
            await runtime._stop_worker()
            await runtime._stop_recording()
            await close_context(context)

    async def wait(self) -> None:
        """Until the worker stops (the `worker` command's whole life)."""
        if self._task is not None:
            await self._task

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    async def _stop_recording(self) -> None:
        """The recorder stopped, and what it had not written yet written now, briefly."""
        self._recorder.cancel()
        await asyncio.gather(self._recorder, return_exceptions=True)
        if len(self.context.activity):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_flush_activity(self.context), LAST_FLUSH_TIMEOUT)

    async def _stop_worker(self) -> None:
        if self.worker is not None and self._task is not None:
            self.worker.stop()
            # Cancelled already when the event loop is being torn down: nothing left to wait for.
            await asyncio.gather(self._task, return_exceptions=True)
