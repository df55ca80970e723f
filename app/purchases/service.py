"""Register, transfer and poll (SPEC §3). The sync row and its job commit together, before the 202."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Caller
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
from app.models import Synchronization
from app.purchases.schemas import PurchaseRequest

REGISTER, TRANSFER = "register", "transfer"

# Every check of a register or transfer, each lookup served by an index: the integration, the
# customer, the purchase a known transaction belongs to, and a replayed Correlation-Id.
# $1 publisher, $2 customer, $3 transactionId, $4 Correlation-Id.
# Each lookup has one index that fits it and no other that could serve it worse (the customer by
# its key alone): asyncpg keeps the plan PostgreSQL makes on a connection's first executions, and
# on nearly empty tables every index with publisher_id first costs the same to it.
FOUND = """
SELECT
  (SELECT active FROM storekit2_integrations WHERE publisher_id = $1) AS active,
  coalesce((SELECT publisher_id = $1 FROM customers WHERE id = $2), false) AS customer,
  (SELECT k.original FROM (
     SELECT original_transaction_id AS original FROM subscriptions
      WHERE publisher_id = $1 AND original_transaction_id = $3 AND status <> 'terminated'
     UNION ALL
     SELECT original_transaction_id FROM subscriptions
      WHERE publisher_id = $1 AND latest_transaction_id = $3
     UNION ALL
     SELECT original_transaction_id FROM synchronizations
      WHERE publisher_id = $1 AND transaction_id = $3 AND original_transaction_id IS NOT NULL
   ) AS k LIMIT 1) AS original,
  (SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $4) AS replayed
"""


def _insert_with_job(purchase_key: str, source: str) -> str:
    """The sync and its job; nothing when the id exists already (a racing replay).
    Beyond FOUND's: $5 id, $6 kind, $7 ipAddress, $8 request hash, $9 now. Built from constant
    fragments only; every value is a bind parameter."""
    return f"""
sync AS (
  INSERT INTO synchronizations (publisher_id, id, kind, transaction_id, purchase_key,
    customer_id, ip_address, correlation_id, request_hash, status, attempts, created_at,
    updated_at)
  SELECT $1, $5, $6, $3, {purchase_key}, $2, $7, $4, $8, 'processing', 0, $9, $9
  FROM {source}
  ON CONFLICT (publisher_id, id) DO NOTHING
  RETURNING publisher_id, id
), job AS (
  INSERT INTO jobs (kind, payload, run_at, attempts, created_at)
  SELECT 'sync', jsonb_build_object('publisherId', publisher_id, 'synchronizationId', id),
    $9, 0, $9
  FROM sync
)"""  # noqa: S608


# A register is one statement, one round trip, no transaction around it: the checks, then the
# sync and its job only if they pass.
REGISTER_SQL = f"""
WITH found AS ({FOUND}),
{_insert_with_job("found.original", "found WHERE found.active AND found.customer AND found.replayed IS NULL")}
SELECT found.*, (SELECT id FROM sync) AS inserted FROM found
"""  # noqa: S608
# A transfer checks the purchase between FOUND and the insert ($10: the purchase).
TRANSFER_SQL = f"""
WITH {_insert_with_job("$10", "(VALUES (1)) AS one")}
SELECT id FROM sync
"""  # noqa: S608
REQUEST_HASH = "SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $2"
ACTIVE_PURCHASE = """
SELECT status FROM subscriptions
WHERE publisher_id = $1 AND original_transaction_id = $2 AND status <> 'terminated'
"""


@dataclass(frozen=True)
class Preflight:
    active: bool | None
    customer: bool
    original: str | None
    replayed: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Preflight:
        return cls(row["active"], row["customer"], row["original"], row["replayed"])


@dataclass(frozen=True)
class SyncRequest:
    """A register or transfer as the statements take it: FOUND's four, then the insert's."""

    publisher_id: int
    body: PurchaseRequest
    correlation_id: str | None
    kind: str
    now: datetime

    @functools.cached_property
    def fingerprint(self) -> str:
        return self.body.fingerprint(self.kind)

    def arguments(self) -> tuple[object, ...]:
        body = self.body
        return (
            self.publisher_id,
            body.cleeng_customer_id,
            body.transaction_id,
            self.correlation_id,
            self.correlation_id or str(uuid.uuid4()),
            self.kind,
            str(body.ip_address) if body.ip_address else None,
            self.fingerprint,
            self.now,
        )


async def _require_active_purchase(
    connection: asyncpg.Connection, publisher_id: int, original: str | None
) -> str:
    status = None
    if original is not None:
        status = await connection.fetchval(ACTIVE_PURCHASE, publisher_id, original)
    if original is None or status != "active":
        raise PurchaseNotFound()
    return original


def _replay(request_hash: str, fingerprint: str, sync_id: str) -> str:
    if request_hash != fingerprint:
        raise InvalidHeaders()
    return sync_id


def _conflict(kind: str) -> CleengError:
    return TransferInProgress() if kind == TRANSFER else SyncInProgress()


def _check(found: Preflight) -> None:
    if not found.active:
        raise IntegrationNotActive()
    if not found.customer:
        raise CustomerNotFound()


async def _accepted(
    connection: asyncpg.Connection, request: SyncRequest, found: Preflight, inserted: str | None
) -> str:
    """The sync's id: the new one, or the one a replayed Correlation-Id was given."""
    fingerprint = request.fingerprint
    corr = request.correlation_id
    if corr is not None and found.replayed is not None:  # accepted before: the same answer
        return _replay(found.replayed, fingerprint, corr)
    _check(found)
    if inserted is not None:
        return inserted
    assert corr is not None  # only a Correlation-Id can already exist: it raced us, a replay
    existing = await connection.fetchval(REQUEST_HASH, request.publisher_id, corr)
    return _replay(existing, fingerprint, corr)


async def _register(connection: asyncpg.Connection, request: SyncRequest) -> str:
    row = await connection.fetchrow(REGISTER_SQL, *request.arguments())
    assert row is not None
    return await _accepted(connection, request, Preflight.of(row), row["inserted"])


async def _transfer(connection: asyncpg.Connection, request: SyncRequest) -> str:
    arguments = request.arguments()
    async with connection.transaction():
        row = await connection.fetchrow(FOUND, *arguments[:4])
        assert row is not None
        found = Preflight.of(row)
        inserted = None
        if found.replayed is None or request.correlation_id is None:
            _check(found)
            key = await _require_active_purchase(connection, request.publisher_id, found.original)
            inserted = await connection.fetchval(TRANSFER_SQL, *arguments, key)
        return await _accepted(connection, request, found, inserted)


async def start_sync(
    pool: asyncpg.Pool,
    caller: Caller,
    body: PurchaseRequest,
    correlation_id: str | None,
    kind: str,
    now: datetime,
) -> str:
    """Accept a register or a transfer: the checks, then the sync and its job, committed."""
    publisher_id = caller.publisher_id
    assert publisher_id is not None
    if caller.kind == "customer" and caller.customer_id != body.cleeng_customer_id:
        raise Forbidden()
    request = SyncRequest(publisher_id, body, correlation_id, kind, now)
    try:
        async with pool.acquire() as connection:
            if kind == REGISTER:
                return await _register(connection, request)
            return await _transfer(connection, request)
    except asyncpg.UniqueViolationError as exc:  # the partial unique indexes: one unfinalized
        raise _conflict(kind) from exc


async def get_sync(session: AsyncSession, caller: Caller, sync_id: str) -> Synchronization:
    sync = await session.get(Synchronization, (caller.publisher_id, sync_id))
    if sync is None:
        raise NotFound()
    if caller.kind == "customer" and sync.customer_id != caller.customer_id:
        raise NotFound()
    return sync
