"""The sync job: ask Apple, decide, and finalize in one transaction (SPEC §3, DESIGN decisions 2-4).

Apple is called with no transaction open. Finalizing locks the purchase (an advisory lock on
publisher + originalTransactionId) and the sync row, and returns early when the sync is already
final: a job may run twice, its effects happen once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.apple.client import Integration
from app.apple.transactions import AppleFinal, ApplePurchase, AppleTransient, fetch_purchase
from app.context import Context
from app.db import unit_of_work
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.logs import sync_id_var
from app.metrics import SYNC_RESULTS
from app.models import Synchronization
from app.notifications.apply import apply_pending
from app.notifications.models import PENDING
from app.purchases import ownership
from app.purchases.finalizing import Finalizing, driver_connection
from app.purchases.outcome import decide
from app.webhooks.delivery import HOLDER, deliver_held
from app.webhooks.fanout import HeldDelivery, held_deliveries, hold_deliveries, lease_for

log = logging.getLogger(__name__)

UNAVAILABLE = "APPLE_UNAVAILABLE"


@dataclass(frozen=True)
class SyncRef:
    publisher_id: int
    sync_id: str
    job_id: int


async def run_sync_job(context: Context, job: ClaimedJob) -> None:
    ref = SyncRef(int(job.payload["publisherId"]), str(job.payload["synchronizationId"]), job.id)
    token = sync_id_var.set(ref.sync_id)
    try:
        await run_sync(context, ref)
    finally:
        sync_id_var.reset(token)


async def run_sync(context: Context, ref: SyncRef) -> None:
    loaded = await _load(context, ref)
    if loaded is None:
        return
    transaction_id, integration = loaded
    if integration is None:
        await _transient(context, ref, AppleTransient("the StoreKit 2 integration is not active"))
        return
    assert context.apple is not None
    try:
        purchase = await fetch_purchase(context.apple, integration, transaction_id)
    except AppleTransient as exc:
        await _transient(context, ref, exc)
        return
    except AppleFinal as exc:
        await _finalize_without_purchase(context, ref, exc.result, str(exc))
        return
    except Exception as exc:  # anything else counts against the schedule too: never stuck
        log.exception("unexpected error while asking Apple")
        await _transient(context, ref, AppleTransient(f"unexpected error: {type(exc).__name__}"))
        return
    await _finalize(context, ref, purchase)


LOAD = """
SELECT s.status, s.transaction_id, i.active, i.publisher_id, i.bundle_id, i.app_apple_id,
    i.issuer_id, i.key_id, i.private_key_encrypted, i.environment, i.updated_at
FROM synchronizations AS s
LEFT JOIN storekit2_integrations AS i ON i.publisher_id = s.publisher_id
WHERE s.publisher_id = $1 AND s.id = $2
"""


async def _load(context: Context, ref: SyncRef) -> tuple[str, Integration | None] | None:
    """The sync's transactionId and its publisher's active integration (None: not active); None
    when the sync is already final (and then the job is done). No transaction: Apple is next."""
    row = await context.pg.fetchrow(LOAD, ref.publisher_id, ref.sync_id)
    if row is None or row["status"] == "finalized":
        await context.pg.execute(queue.COMPLETE, ref.job_id)
        return None
    if not row["active"]:  # NULL when there is no integration at all
        return str(row["transaction_id"]), None
    return str(row["transaction_id"]), Integration.from_record(row, context.secrets)


async def _begin(
    context: Context, session: AsyncSession, ref: SyncRef, original: str | None
) -> tuple[Finalizing, Synchronization] | None:
    """Open the finalizing transaction: the purchase's lock first (when Apple named it), then
    the sync row's. None when the sync is already final (and then the job is done)."""
    if original is not None:
        await ownership.lock_purchase(session, ref.publisher_id, original)
    else:
        await session.execute(text("SELECT 1"))  # opens the transaction
    tx = Finalizing(await driver_connection(session), ref.publisher_id, context.clock.now())
    sync = await tx.lock_sync(ref.sync_id)
    if sync is None or sync.status == "finalized":
        await tx.connection.execute(queue.COMPLETE, ref.job_id)
        return None
    return tx, sync


async def _end(
    context: Context, session: AsyncSession, tx: Finalizing, sync: Synchronization
) -> list[HeldDelivery]:
    """Write the sync and its events; their deliveries leave from this process after commit."""
    await tx.save_sync(sync)
    lease = (HOLDER, lease_for(tx.now, context.settings.webhook_timeout))
    held = await tx.write_events(sync.id, lease)
    hold_deliveries(session, *lease)  # for anything the ORM writes after (notifications)
    return held


async def _finalized(context: Context, result: str, held: list[HeldDelivery]) -> None:
    SYNC_RESULTS.labels(result).inc()
    await deliver_held(context, held)


async def _finalize(context: Context, ref: SyncRef, purchase: ApplePurchase) -> None:
    original = purchase.original_transaction_id
    async with unit_of_work(context.sessions) as session:
        begun = await _begin(context, session, ref, original)
        if begun is None:
            return
        tx, sync = begun
        offer_id, waiting = await tx.offer_and_waiting(purchase.product_id, original, PENDING)
        outcome = decide(purchase, offer_id, tx.now)
        await ownership.apply(tx, sync, purchase, offer_id, outcome)
        held = await _end(context, session, tx, sync)
        if waiting:  # notifications that arrived before this purchase was synchronized
            await apply_pending(session, ref.publisher_id, original, tx.now)
            held += held_deliveries(session)
        await tx.connection.execute(queue.COMPLETE, ref.job_id)
    log.info("sync finalized", extra={"fields": {"result": sync.result}})
    await _finalized(context, str(sync.result), held)


async def _finalize_without_purchase(
    context: Context, ref: SyncRef, result: str, reason: str
) -> None:
    async with unit_of_work(context.sessions) as session:
        begun = await _begin(context, session, ref, None)
        if begun is None:
            return
        tx, sync = begun
        sync.last_error = reason
        ownership.finish_without_purchase(tx, sync, result)
        held = await _end(context, session, tx, sync)
        await tx.connection.execute(queue.COMPLETE, ref.job_id)
    log.info("sync finalized", extra={"fields": {"result": result, "reason": reason}})
    await _finalized(context, result, held)


def retry_delay(
    schedule: tuple[float, ...], attempts: int, retry_after: float | None
) -> float | None:
    """Seconds before try `attempts + 1`, or None when the schedule is exhausted."""
    if attempts > len(schedule):
        return None
    return max(schedule[attempts - 1], retry_after or 0.0)


async def _transient(context: Context, ref: SyncRef, exc: AppleTransient) -> None:
    async with unit_of_work(context.sessions) as session:
        begun = await _begin(context, session, ref, None)
        if begun is None:
            return
        tx, sync = begun
        sync.attempts += 1
        delay = retry_delay(context.settings.sync_retry_schedule, sync.attempts, exc.retry_after)
        sync.last_error = str(exc)
        if delay is None:
            ownership.finish_without_purchase(tx, sync, UNAVAILABLE)
            await tx.connection.execute(queue.COMPLETE, ref.job_id)
        else:
            sync.status, sync.updated_at = "retrying", tx.now
            run_at = tx.now + timedelta(seconds=delay)
            await tx.connection.execute(queue.RESCHEDULE, ref.job_id, run_at, str(exc))
        held = await _end(context, session, tx, sync)
    if delay is None:
        await _finalized(context, UNAVAILABLE, held)
        return
    log.info("sync will retry", extra={"fields": {"attempts": sync.attempts, "reason": str(exc)}})
