"""Register, transfer and poll (docs/api.md §3), and finalizing a sync with what Apple said.

A register is one statement on the `Database` (its own transaction: the sync and its job commit
together, before the 202). A transfer checks the purchase between its reads and its insert, in the
transaction its caller opened. A finalize runs in its job's transaction, with the purchase and the
sync row locked: a job may run twice, its effects happen once.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from app.apple.transactions import ApplePurchase
from app.callers import Caller, CallerKind
from app.db import Database, Executor
from app.enums import SubscriptionStatus, SyncKind, SyncResult, SyncStatus
from app.errors import (
    CleengError,
    CustomerNotFound,
    Forbidden,
    IntegrationNotActive,
    InvalidBody,
    InvalidHeaders,
    NotFound,
    PurchaseNotFound,
    SyncInProgress,
    TooManyRequests,
    TransferInProgress,
    detail,
)
from app.purchases import payloads, repository
from app.purchases.repository import Failures, Found, Request, Sync
from app.purchases.schemas import PurchaseRequest
from app.subscriptions import ownership
from app.subscriptions import repository as subscriptions
from app.subscriptions.events import Event

# docs/api.md §3: a customer token with this many failed registers and transfers in the window gets 429
# until the window has room again. Failed: a 422 answered to it, or a sync of its that finalized
# with one of these results. Publisher tokens are not limited.
FAILURES = Failures(limit=20, window=timedelta(minutes=10))
FAILED_RESULTS = (
    SyncResult.TRANSACTION_ID_NOT_FOUND,
    SyncResult.PURCHASE_OWNED_BY_ANOTHER_CUSTOMER,
)


def _request(
    caller: Caller, body: PurchaseRequest, correlation_id: str | None, kind: SyncKind, now: datetime
) -> Request:
    if caller.own_customer not in (None, body.cleeng_customer_id):
        problem = f"a customer JWT registers for its own customer only, {caller.own_customer}"
        raise Forbidden(detail("cleengCustomerId", problem), f"Forbidden: {problem}")
    by_customer = caller.kind == CallerKind.CUSTOMER
    return Request(
        publisher_id=caller.publisher_id,
        customer_id=body.cleeng_customer_id,
        transaction_id=body.transaction_id,
        sync_id=correlation_id or str(uuid.uuid4()),
        bundle_id=body.bundle_id,
        kind=kind,
        caller=CallerKind.CUSTOMER if by_customer else CallerKind.PUBLISHER,
        ip_address=str(body.ip_address) if body.ip_address else None,
        fingerprint=body.fingerprint(kind),
        now=now,
        correlation_id=correlation_id,
        failures=FAILURES if by_customer else None,
    )


def _check(found: Found, request: Request) -> None:
    if found.limited_from is not None and request.failures is not None:
        _too_many(found.limited_from, request.failures, request.now)
    if not found.active:
        raise IntegrationNotActive()
    if request.bundle_id is not None and not found.app:
        problem = f"{request.bundle_id} is not an app of this publisher"
        raise InvalidBody(detail("bundleId", problem))
    if not found.customer:
        customer = request.customer_id
        problem = f"{customer} is not a customer of this publisher"
        raise CustomerNotFound(
            detail("cleengCustomerId", problem), f"Unable to find customer {customer}: {problem}"
        )


def _too_many(limited_from: datetime, failures: Failures, now: datetime) -> None:
    wait = math.ceil((limited_from + failures.window - now).total_seconds())
    minutes = int(failures.window.total_seconds() // 60)
    problem = (
        f"{failures.limit} failed registers or transfers in {minutes} minutes:"
        f" try again in {wait} s"
    )
    raise TooManyRequests(wait, detail("Authorization", problem))


async def failed(db: Executor, caller: Caller, error: CleengError, now: datetime) -> None:
    """A register or transfer answered `error`: a 422 to a customer token counts toward its limit
    (one statement, committed whatever becomes of the request's transaction)."""
    if error.status == 422 and caller.kind == CallerKind.CUSTOMER:
        assert caller.customer_id is not None
        await repository.record_failure(db, caller.publisher_id, caller.customer_id, now, FAILURES)


async def _count_failure(tx: Executor, sync: Sync, now: datetime) -> None:
    """A customer token's sync that finalized as a failed register counts toward its limit."""
    if sync.caller == CallerKind.CUSTOMER and sync.result in FAILED_RESULTS:
        await repository.record_failure(tx, sync.publisher_id, sync.customer_id, now, FAILURES)


def _replay(request_hash: str | None, request: Request) -> str:
    """The same id again: the same answer for the same request, 400 for another."""
    if request_hash != request.fingerprint:
        problem = "was sent before with another body: a replay must repeat it exactly"
        raise InvalidHeaders(
            detail("Correlation-Id", problem), f"Invalid headers: Correlation-Id {problem}"
        )
    return request.sync_id


async def _accepted(db: Executor, request: Request, found: Found, inserted: str | None) -> str:
    """The sync's id: the new one, or the one accepted before for this id."""
    if found.replayed is not None:
        return _replay(found.replayed, request)
    _check(found, request)
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
        problem = "not an active purchase that this publisher has synchronized"
        raise PurchaseNotFound(
            detail("transactionId", problem), f"Unable to find purchase: {problem}"
        )
    return original


async def transfer(
    tx: Executor, caller: Caller, body: PurchaseRequest, correlation_id: str | None, now: datetime
) -> str:
    """Accept a transfer of an active purchase, in the caller's transaction."""
    request = _request(caller, body, correlation_id, SyncKind.TRANSFER, now)
    found = await repository.found(tx, request)
    if found.replayed is not None:
        return _replay(found.replayed, request)
    _check(found, request)
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
        raise NotFound(message=f"Entity not found: synchronization {sync_id} for this caller")
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
    facts = await repository.settling(
        tx, sync.publisher_id, purchase.product_id, original, sync.customer_id
    )
    by_customer = sync.caller == CallerKind.CUSTOMER
    policy = ownership.Policy(facts.ownership, by_customer, facts.app_account_token)
    claim = ownership.Claim(sync.publisher_id, sync.customer_id, purchase, facts.offer_id, policy)
    settled = await ownership.settle(tx, claim, now)
    _finish(sync, settled.result, settled.granted, now)
    sync.original_transaction_id, sync.apple_data = original, purchase.said
    sync.bundle_id = purchase.bundle_id or sync.bundle_id
    if settled.subscription is not None:
        sync.offer_id, sync.subscription_id = facts.offer_id, settled.subscription.id
        first = payloads.validation_succeeded(sync, settled.subscription, now, settled.previous)
    else:
        first = payloads.validation_failed(sync, purchase.product_id, purchase.environment)
    await repository.save(tx, sync)
    await _count_failure(tx, sync, now)
    events = [first, *_of_sync(sync, settled.events), payloads.sync_result(sync)]
    return Finalized(events, facts.waiting)


async def settle_without_purchase(
    tx: Executor, sync: Sync, result: SyncResult, reason: str, now: datetime
) -> list[Event]:
    """Apple could not tell us about the purchase: the sync ends with `result`, nothing else
    changes."""
    _finish(sync, result, False, now)
    sync.last_error = reason
    await repository.save(tx, sync)
    await _count_failure(tx, sync, now)
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
