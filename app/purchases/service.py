"""Register, transfer and poll (SPEC §3), and finalizing a sync with what Apple said.

A register is one statement on the `Database` (its own transaction: the sync and its job commit
together, before the 202). A transfer checks the purchase between its reads and its insert, in the
transaction its caller opened. A finalize runs in its job's transaction, with the purchase and the
sync row locked: a job may run twice, its effects happen once.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from app.apple.transactions import ApplePurchase
from app.callers import Caller
from app.db import Database, Executor
from app.enums import SubscriptionStatus, SyncKind, SyncResult, SyncStatus
from app.errors import (
    CleengError,
    CustomerNotFound,
    Forbidden,
    IntegrationNotActive,
    InvalidHeaders,
    NotFound,
    PurchaseNotFound,
    SyncInProgress,
    TransferInProgress,
)
from app.purchases import payloads, repository
from app.purchases.repository import Found, Request, Sync
from app.purchases.schemas import PurchaseRequest
from app.subscriptions import ownership
from app.subscriptions import repository as subscriptions
from app.subscriptions.events import Event


def _request(
    caller: Caller, body: PurchaseRequest, correlation_id: str | None, kind: SyncKind, now: datetime
) -> Request:
    if caller.own_customer not in (None, body.cleeng_customer_id):
        raise Forbidden()
    return Request(
        publisher_id=caller.publisher_id,
        customer_id=body.cleeng_customer_id,
        transaction_id=body.transaction_id,
        sync_id=correlation_id or str(uuid.uuid4()),
        kind=kind,
        ip_address=str(body.ip_address) if body.ip_address else None,
        fingerprint=body.fingerprint(kind),
        now=now,
        correlation_id=correlation_id,
    )


def _check(found: Found) -> None:
    if not found.active:
        raise IntegrationNotActive()
    if not found.customer:
        raise CustomerNotFound()


def _replay(request_hash: str | None, request: Request) -> str:
    """The same id again: the same answer for the same request, 400 for another."""
    if request_hash != request.fingerprint:
        raise InvalidHeaders()
    return request.sync_id


async def _accepted(db: Executor, request: Request, found: Found, inserted: str | None) -> str:
    """The sync's id: the new one, or the one accepted before for this id."""
    if found.replayed is not None:
        return _replay(found.replayed, request)
    _check(found)
    if inserted is not None:
        return inserted
    # The id exists although FOUND did not see it: a replay raced this request.
    return _replay(
        await repository.request_hash(db, request.publisher_id, request.sync_id), request
    )


def _conflict(kind: SyncKind) -> CleengError:
    return TransferInProgress() if kind == SyncKind.TRANSFER else SyncInProgress()


async def register(
    db: Database, caller: Caller, body: PurchaseRequest, correlation_id: str | None, now: datetime
) -> str:
    """Accept a register: the checks, then the sync and its job, in one statement. Safe to run
    twice (`db.retrying`): a second run finds the sync of the first by its id, and answers it."""
    request = _request(caller, body, correlation_id, SyncKind.REGISTER, now)
    try:
        found, inserted = await repository.register(db.retrying, request)
    except asyncpg.UniqueViolationError as exc:  # the partial unique indexes: one unfinalized
        raise _conflict(SyncKind.REGISTER) from exc
    return await _accepted(db, request, found, inserted)


async def _active_purchase(tx: Executor, publisher_id: int, original: str | None) -> str:
    status = (
        None if original is None else await subscriptions.stored_status(tx, publisher_id, original)
    )
    if original is None or status != SubscriptionStatus.ACTIVE:
        raise PurchaseNotFound()
    return original


async def transfer(
    tx: Executor, caller: Caller, body: PurchaseRequest, correlation_id: str | None, now: datetime
) -> str:
    """Accept a transfer of an active purchase, in the caller's transaction."""
    request = _request(caller, body, correlation_id, SyncKind.TRANSFER, now)
    found = await repository.found(tx, request)
    if found.replayed is not None:
        return _replay(found.replayed, request)
    _check(found)
    purchase = await _active_purchase(tx, request.publisher_id, found.original)
    try:
        inserted = await repository.insert_transfer(tx, request, purchase)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(SyncKind.TRANSFER) from exc
    return await _accepted(tx, request, found, inserted)


async def get_sync(db: Executor, caller: Caller, sync_id: str) -> Sync:
    """The caller's sync; 404 for another publisher's, or another customer's."""
    sync = await repository.get(db, caller.publisher_id, sync_id)
    if sync is None or caller.own_customer not in (None, sync.customer_id):
        raise NotFound()
    return sync


# Finalizing ------------------------------------------------------------------------------------


async def begin(tx: Executor, publisher_id: int, sync_id: str, original: str | None) -> Sync | None:
    """In the finalizing transaction: the purchase's lock first (when Apple named it), then the
    sync row's. None when the sync is gone or already final (a job that ran twice)."""
    if original is not None:
        await subscriptions.lock_purchase(tx, publisher_id, original)
    sync = await repository.lock(tx, publisher_id, sync_id)
    if sync is None or sync.status == SyncStatus.FINALIZED:
        return None
    return sync


def _finish(sync: Sync, result: SyncResult, granted: bool, now: datetime) -> None:
    sync.status, sync.result, sync.access_granted = SyncStatus.FINALIZED, result, granted
    sync.updated_at = now


def _of_sync(sync: Sync, events: list[Event]) -> list[Event]:
    return [dataclasses.replace(event, synchronization_id=sync.id) for event in events]


@dataclass(frozen=True)
class Finalized:
    """A sync's writes are done: its events, in order, and whether notifications about its
    purchase waited for it."""

    events: list[Event]
    waiting: bool


async def settle(tx: Executor, sync: Sync, purchase: ApplePurchase, now: datetime) -> Finalized:
    """Apply what Apple said about the purchase to its subscription, and finalize the sync."""
    original = purchase.original_transaction_id
    offer_id, waiting = await repository.offer_and_waiting(
        tx, sync.publisher_id, purchase.product_id, original
    )
    claim = ownership.Claim(sync.publisher_id, sync.customer_id, purchase, offer_id)
    settled = await ownership.settle(tx, claim, now)
    _finish(sync, settled.result, settled.granted, now)
    sync.original_transaction_id = original
    if settled.subscription is not None:
        sync.offer_id, sync.subscription_id = offer_id, settled.subscription.id
        first = payloads.validation_succeeded(sync, settled.subscription, now, settled.previous)
    else:
        first = payloads.validation_failed(sync, purchase.product_id, purchase.environment)
    await repository.save(tx, sync)
    events = [first, *_of_sync(sync, settled.events), payloads.sync_result(sync)]
    return Finalized(events, waiting)


async def settle_without_purchase(
    tx: Executor, sync: Sync, result: SyncResult, reason: str, now: datetime
) -> list[Event]:
    """Apple could not tell us about the purchase: the sync ends with `result`, nothing else
    changes."""
    _finish(sync, result, False, now)
    sync.last_error = reason
    await repository.save(tx, sync)
    return [payloads.validation_failed(sync, None, None), payloads.sync_result(sync)]


def retry_delay(
    schedule: tuple[float, ...], attempts: int, retry_after: float | None
) -> float | None:
    """Seconds before try `attempts + 1`, or None when the schedule is exhausted."""
    if attempts > len(schedule):
        return None
    return max(schedule[attempts - 1], retry_after or 0.0)


async def retry_later(
    tx: Executor, sync: Sync, reason: str, delay: float, now: datetime
) -> datetime:
    """A transient failure with tries left: `retrying`, and when to run again."""
    sync.status, sync.last_error, sync.updated_at = SyncStatus.RETRYING, reason, now
    await repository.save(tx, sync)
    return now + timedelta(seconds=delay)


async def transient(
    tx: Executor,
    sync: Sync,
    reason: str,
    retry_after: float | None,
    schedule: tuple[float, ...],
    now: datetime,
) -> tuple[list[Event], datetime | None]:
    """A transient failure: another try on the schedule (and when), or, the schedule exhausted,
    the sync ends `APPLE_UNAVAILABLE` (and its events)."""
    sync.attempts += 1
    delay = retry_delay(schedule, sync.attempts, retry_after)
    if delay is None:
        result = SyncResult.APPLE_UNAVAILABLE
        return await settle_without_purchase(tx, sync, result, reason, now), None
    return [], await retry_later(tx, sync, reason, delay, now)
