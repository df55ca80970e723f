"""The sync job: ask Apple, decide, and finalize in one transaction (SPEC §3, DESIGN decisions 2-4).

Apple is called with no transaction open. Finalizing locks the purchase (an advisory lock on
publisher + originalTransactionId) and the sync row, and returns early when the sync is already
final: a job may run twice, its effects happen once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

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


async def _lock_sync(session: AsyncSession, ref: SyncRef) -> Synchronization | None:
    """The sync row, locked; None when it is already final (and then the job is done)."""
    sync = await session.get(
        Synchronization,
        (ref.publisher_id, ref.sync_id),
        with_for_update=True,
        populate_existing=True,
    )
    if sync is None or sync.status == "finalized":
        await queue.complete(session, ref.job_id)
        return None
    return sync


# After the purchase's lock: the product's offer, and whether notifications wait for this sync.
OFFER_AND_WAITING = text(
    """
    SELECT
      (SELECT offer_id FROM offer_products
        WHERE publisher_id = :publisher_id AND product_id = :product_id) AS offer_id,
      EXISTS (SELECT 1 FROM apple_notifications
        WHERE publisher_id = :publisher_id AND original_transaction_id = :original
          AND status = :pending) AS waiting
    """
)


async def _offer_and_waiting(
    session: AsyncSession, publisher_id: int, purchase: ApplePurchase
) -> tuple[str | None, bool]:
    values = {
        "publisher_id": publisher_id,
        "product_id": purchase.product_id,
        "original": purchase.original_transaction_id,
        "pending": PENDING,
    }
    offer_id, waiting = (await session.execute(OFFER_AND_WAITING, values)).one()
    return (None if offer_id is None else str(offer_id)), bool(waiting)


def _hold_webhooks(context: Context, session: AsyncSession, now: datetime) -> None:
    """The finalizing transaction's webhooks are sent by this job right after its commit
    (`_finalized`), not through the queue: their jobs are written leased to this process."""
    hold_deliveries(session, HOLDER, lease_for(now, context.settings.webhook_timeout))


async def _finalized(context: Context, result: str, held: list[HeldDelivery]) -> None:
    SYNC_RESULTS.labels(result).inc()
    await deliver_held(context, held)


async def _finalize(context: Context, ref: SyncRef, purchase: ApplePurchase) -> None:
    now = context.clock.now()
    async with unit_of_work(context.sessions) as session:
        _hold_webhooks(context, session, now)
        await ownership.lock_purchase(session, ref.publisher_id, purchase.original_transaction_id)
        sync = await _lock_sync(session, ref)
        if sync is None:
            return
        offer_id, waiting = await _offer_and_waiting(session, ref.publisher_id, purchase)
        outcome = decide(purchase, offer_id, now)
        await ownership.apply(session, sync, purchase, offer_id, outcome, now)
        if waiting:  # notifications that arrived before this purchase was synchronized
            await apply_pending(session, ref.publisher_id, purchase.original_transaction_id, now)
        await queue.complete(session, ref.job_id)
        held = held_deliveries(session)
    log.info("sync finalized", extra={"fields": {"result": sync.result}})
    await _finalized(context, str(sync.result), held)


async def _finalize_without_purchase(
    context: Context, ref: SyncRef, result: str, reason: str
) -> None:
    now = context.clock.now()
    async with unit_of_work(context.sessions) as session:
        _hold_webhooks(context, session, now)
        sync = await _lock_sync(session, ref)
        if sync is None:
            return
        sync.last_error = reason
        await ownership.finish_without_purchase(session, sync, result, now)
        await queue.complete(session, ref.job_id)
        held = held_deliveries(session)
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
    now = context.clock.now()
    async with unit_of_work(context.sessions) as session:
        _hold_webhooks(context, session, now)
        sync = await _lock_sync(session, ref)
        if sync is None:
            return
        sync.attempts += 1
        delay = retry_delay(context.settings.sync_retry_schedule, sync.attempts, exc.retry_after)
        if delay is None:
            sync.last_error = str(exc)
            await ownership.finish_without_purchase(session, sync, UNAVAILABLE, now)
            await queue.complete(session, ref.job_id)
        else:
            sync.status, sync.last_error, sync.updated_at = "retrying", str(exc), now
            await queue.reschedule(session, ref.job_id, now + timedelta(seconds=delay), str(exc))
        held = held_deliveries(session)
    if delay is None:
        await _finalized(context, UNAVAILABLE, held)
        return
    log.info("sync will retry", extra={"fields": {"attempts": sync.attempts, "reason": str(exc)}})
