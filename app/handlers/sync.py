"""The `sync` job: ask Apple with no transaction open, then finalize in one transaction.

Apple is asked with the app the register named, else with each of the publisher's apps in turn
(`repository.LOAD` says the order: the app of a purchase already known first, then oldest first)
until one knows the transaction (`find_purchase`).

The finalizing transaction locks the purchase (when Apple named it) and the sync row, writes the
subscription changes, the sync, the notifications that waited for this purchase, and all their
webhook events; the events' deliveries are held for this process, which sends them right after the
commit (`WebhookSender.deliver_held`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp
from app.apple.transactions import AppleFinal, ApplePurchase, AppleTransient, find_purchase
from app.context import Context
from app.db import Executor, Row
from app.enums import ActivityMetric, SyncStatus
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.logs import sync_id_var
from app.metrics import APPLE_WAITS, SYNC_RESULTS
from app.notifications import service as notifications
from app.purchases import repository, service
from app.purchases.repository import Sync
from app.subscriptions.events import Event
from app.webhooks import outbox
from app.webhooks.outbox import HeldDelivery

log = logging.getLogger(__name__)

Fetched = ApplePurchase | AppleFinal | AppleTransient


@dataclass(frozen=True)
class SyncRef:
    publisher_id: int
    sync_id: str
    job_id: int

    @classmethod
    def of(cls, job: ClaimedJob) -> SyncRef:
        payload = job.payload
        return cls(int(payload["publisherId"]), str(payload["synchronizationId"]), job.id)


async def run_sync_job(context: Context, job: ClaimedJob) -> None:
    ref = SyncRef.of(job)
    token = sync_id_var.set(ref.sync_id)
    try:
        await run_sync(context, ref)
    finally:
        sync_id_var.reset(token)


async def run_sync(context: Context, ref: SyncRef) -> None:
    loaded = await repository.load(context.db, ref.publisher_id, ref.sync_id)
    if not loaded or loaded[0]["status"] == SyncStatus.FINALIZED:
        await queue.complete(context.db, ref.job_id)
        return
    try:
        fetched = await _ask_apple(context, loaded)
    except OverBudget as wait:  # not a failure: the sync stays as it is, its job waits
        await queue.reschedule(context.db, ref.job_id, wait.until, f"waiting: {wait}")
        APPLE_WAITS.inc()
        return
    held = await _finalize(context, ref, fetched)
    await context.webhooks.deliver_held(held)


def _not_ready(first: Row) -> AppleTransient:
    if not first["active"]:  # NULL when there is no integration at all
        return AppleTransient("the StoreKit 2 integration is not active")
    return AppleTransient(f"the app {first['requested']} is not one of the publisher's")


async def _ask_apple(context: Context, loaded: Sequence[Row]) -> Fetched:
    """Apple's verified word on the sync's transaction (the rows of `repository.LOAD`: the sync,
    and the apps to ask), or why there is none."""
    first = loaded[0]
    if not first["active"] or first["bundle_id"] is None:
        return _not_ready(first)
    apps = [AppleApp.from_record(row, context.secrets) for row in loaded]
    try:
        return await find_purchase(context.apple, apps, str(first["transaction_id"]))
    except (AppleTransient, AppleFinal) as exc:
        return exc
    except OverBudget:
        raise
    except Exception as exc:  # anything else counts against the schedule too: never stuck
        log.exception("unexpected error while asking Apple")
        return AppleTransient(f"unexpected error: {type(exc).__name__}")


async def _settle(
    context: Context, tx: Executor, sync: Sync, fetched: Fetched, job_id: int
) -> list[Event]:
    """The sync's writes for what Apple said, and its job completed or rescheduled."""
    now = context.clock.now()
    if isinstance(fetched, ApplePurchase):
        finalized = await service.settle(tx, sync, fetched, now)
        events = finalized.events
        if finalized.waiting:  # notifications that arrived before this purchase was synchronized
            original = fetched.original_transaction_id
            events += await notifications.apply_pending(tx, sync.publisher_id, original, now)
    elif isinstance(fetched, AppleFinal):
        events = await service.settle_without_purchase(tx, sync, fetched.result, str(fetched), now)
    else:
        schedule = context.settings.sync_retry_schedule
        reason, wait = str(fetched), fetched.retry_after
        events, run_at = await service.transient(tx, sync, reason, wait, schedule, now)
        if run_at is not None:
            await queue.reschedule(tx, job_id, run_at, reason)
            return events
    await queue.complete(tx, job_id)
    return events


async def _finalize(context: Context, ref: SyncRef, fetched: Fetched) -> list[HeldDelivery]:
    """One transaction: the purchase and the sync locked, every write, the events held."""
    original = fetched.original_transaction_id if isinstance(fetched, ApplePurchase) else None
    async with context.db.transaction() as tx:
        sync = await service.begin(tx, ref.publisher_id, ref.sync_id, original)
        if sync is None:
            await queue.complete(tx, ref.job_id)
            return []
        events = await _settle(context, tx, sync, fetched, ref.job_id)
        now = context.clock.now()
        held = await outbox.write(tx, ref.publisher_id, events, now, context.webhooks.hold(now))
    _report(context, sync)
    return held


def _report(context: Context, sync: Sync) -> None:
    if sync.status == SyncStatus.FINALIZED:
        SYNC_RESULTS.labels(str(sync.result)).inc()
        context.activity.count(sync.publisher_id, ActivityMetric.SYNC, str(sync.result))
        log.info("sync finalized", extra={"fields": {"result": sync.result}})
    else:
        fields = {"attempts": sync.attempts, "reason": sync.last_error}
        log.info("sync will retry", extra={"fields": fields})
