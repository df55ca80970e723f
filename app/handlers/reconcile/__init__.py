"""The `reconcile` job (docs/api.md §6): one pass over Apple's notification history and the expiry
safety net, then it schedules its own next run, APPLE_RECONCILE_INTERVAL after this one started
(at once when the pass reached its bound with more to do).

Being one row of the queue, the pass runs in one process at a time, whatever the number of
processes. Should its lease run out while it still runs (a process frozen for longer than the
lease) and another worker claim it, every step of the first pass finds the job claimed again and
stops before writing anything (`Fence`): two passes never write at the same time. Each pass is
recorded in `reconcile_passes`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta

from app.apple.transactions import AppleTransient
from app.context import Context
from app.enums import PassOutcome
from app.handlers.reconcile.fence import Fence, Superseded
from app.handlers.reconcile.history import read_history
from app.handlers.reconcile.safety_net import safety_net
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.jobs.worker import holder_id
from app.metrics import RECONCILE_DURATION, RECONCILE_PASSES
from app.reconcile import repository, service
from app.reconcile.service import Tally, Unreadable

log = logging.getLogger(__name__)


async def _left_out(context: Context, fence: Fence, app: Unreadable, tally: Tally) -> None:
    """An app whose key cannot be opened: noted on its cursors (if it has any) and in the pass."""
    async with context.db.transaction() as tx:
        await fence.check(tx)
        now = context.clock.now()
        await repository.note_app_error(tx, app.publisher_id, app.bundle_id, app.error, now)
    tally.stopped.append(f"app {app.describe()}: {app.error}")


async def _pass(context: Context, fence: Fence, tally: Tally) -> None:
    apps = await service.pass_apps(context.db, context.secrets)
    for app in apps.unreadable:
        await _left_out(context, fence, app, tally)
    for unit in apps.units:
        await read_history(context, fence, unit, tally)
    await safety_net(context, fence, tally, apps)


async def run_reconcile_job(context: Context, job: ClaimedJob) -> None:
    fence, db = Fence(job.id, job.attempts), context.db
    started, timer = context.clock.now(), time.perf_counter()
    holder = holder_id(f"reconcile#{job.attempts}")  # the process, and which claim of the job
    pass_id = await repository.begin_pass(db, holder, started)
    tally, superseded = Tally(), False
    try:
        await _pass(context, fence, tally)
    except Superseded:
        superseded = True
    except AppleTransient as exc:  # Apple down (failing on several in a row): the next pass goes on
        tally.stop("the pass", exc)
    except Exception as exc:  # the database lost, or a bug: recorded; the worker retries the job
        tally.stopped.append(f"{type(exc).__name__}: {exc}")
        RECONCILE_PASSES.labels(PassOutcome.STOPPED).inc()
        with contextlib.suppress(Exception):  # the database may be what failed
            await repository.finish_pass(db, pass_id, context.clock.now(), tally.report())
        raise
    report = tally.report(superseded)
    await repository.finish_pass(db, pass_id, context.clock.now(), report)
    RECONCILE_PASSES.labels(report.outcome).inc()
    RECONCILE_DURATION.observe(time.perf_counter() - timer)
    fields = {"pass": pass_id, **report.__dict__}
    log.info("reconciliation pass", extra={"fields": fields})
    if superseded:
        return  # the job is another worker's now
    interval = timedelta(seconds=context.settings.apple_reconcile_interval)
    more = report.outcome == PassOutcome.PARTIAL
    run_at = context.clock.now() if more else started + interval
    await queue.reschedule_held(db, job.id, job.attempts, run_at, report.detail)
