"""Register, transfer and poll (SPEC §3). The sync row and its job commit together, before the 202."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
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
from app.models import Subscription, Synchronization
from app.purchases.schemas import PurchaseRequest

REGISTER, TRANSFER = "register", "transfer"
# Every check of a register in one round trip: the integration, the customer, the purchase a
# known transaction belongs to (each lookup served by an index), and a replayed Correlation-Id.
PREFLIGHT = text("""
SELECT
  (SELECT active FROM storekit2_integrations WHERE publisher_id = :p) AS active,
  EXISTS (SELECT 1 FROM customers WHERE id = :c AND publisher_id = :p) AS customer,
  (SELECT k.original FROM (
     SELECT original_transaction_id AS original FROM subscriptions
      WHERE publisher_id = :p AND original_transaction_id = :t AND status <> 'terminated'
     UNION ALL
     SELECT original_transaction_id FROM subscriptions
      WHERE publisher_id = :p AND latest_transaction_id = :t
     UNION ALL
     SELECT original_transaction_id FROM synchronizations
      WHERE publisher_id = :p AND transaction_id = :t AND original_transaction_id IS NOT NULL
   ) AS k LIMIT 1) AS original,
  (SELECT request_hash FROM synchronizations WHERE publisher_id = :p AND id = :corr) AS replayed
""")

# The sync and its job in one statement; nothing when the id exists already (a racing replay).
INSERT_WITH_JOB = text("""
WITH sync AS (
  INSERT INTO synchronizations (publisher_id, id, kind, transaction_id, purchase_key,
    customer_id, ip_address, correlation_id, request_hash, status, attempts, created_at,
    updated_at)
  VALUES (:publisher_id, :id, :kind, :transaction_id, :purchase_key, :customer_id,
    :ip_address, :correlation_id, :request_hash, 'processing', 0, :now, :now)
  ON CONFLICT (publisher_id, id) DO NOTHING
  RETURNING publisher_id, id
), job AS (
  INSERT INTO jobs (kind, payload, run_at, attempts, created_at)
  SELECT 'sync', jsonb_build_object('publisherId', publisher_id, 'synchronizationId', id),
    :now, 0, :now
  FROM sync
  RETURNING id
)
SELECT id FROM sync
""")


@dataclass(frozen=True)
class Preflight:
    active: bool | None
    customer: bool
    original: str | None
    replayed: str | None


async def _preflight(
    session: AsyncSession, publisher_id: int, body: PurchaseRequest, correlation_id: str | None
) -> Preflight:
    params = {
        "p": publisher_id,
        "c": body.cleeng_customer_id,
        "t": body.transaction_id,
        "corr": correlation_id,
    }
    row = (await session.execute(PREFLIGHT, params)).one()
    return Preflight(*row)


async def _require_active_purchase(
    session: AsyncSession, publisher_id: int, original: str | None
) -> str:
    status = None
    if original is not None:
        status = await session.scalar(
            select(Subscription.status).where(
                Subscription.publisher_id == publisher_id,
                Subscription.original_transaction_id == original,
                Subscription.status != "terminated",
            )
        )
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


async def start_sync(
    session: AsyncSession,
    caller: Caller,
    body: PurchaseRequest,
    correlation_id: str | None,
    kind: str,
    now: datetime,
) -> str:
    """Accept a register or a transfer: checks, then the sync and its job in this transaction."""
    publisher_id = caller.publisher_id
    assert publisher_id is not None
    if caller.kind == "customer" and caller.customer_id != body.cleeng_customer_id:
        raise Forbidden()
    found = await _preflight(session, publisher_id, body, correlation_id)
    fingerprint = body.fingerprint(kind)
    if correlation_id is not None and found.replayed is not None:  # accepted before: same answer
        return _replay(found.replayed, fingerprint, correlation_id)
    _check(found)
    purchase_key = found.original
    if kind == TRANSFER:
        purchase_key = await _require_active_purchase(session, publisher_id, found.original)
    sync_id = correlation_id or str(uuid.uuid4())
    values = {
        "publisher_id": publisher_id,
        "id": sync_id,
        "kind": kind,
        "transaction_id": body.transaction_id,
        "purchase_key": purchase_key,
        "customer_id": body.cleeng_customer_id,
        "ip_address": str(body.ip_address) if body.ip_address else None,
        "correlation_id": correlation_id,
        "request_hash": fingerprint,
        "now": now,
    }
    try:
        inserted = await session.scalar(INSERT_WITH_JOB, values)
    except IntegrityError as exc:  # the partial unique indexes: one unfinalized sync
        raise _conflict(kind) from exc
    if inserted is None:  # the same Correlation-Id raced us: a replay after all
        existing = await session.get_one(Synchronization, (publisher_id, sync_id))
        return _replay(existing.request_hash, fingerprint, sync_id)
    return sync_id


async def get_sync(session: AsyncSession, caller: Caller, sync_id: str) -> Synchronization:
    sync = await session.get(Synchronization, (caller.publisher_id, sync_id))
    if sync is None:
        raise NotFound()
    if caller.kind == "customer" and sync.customer_id != caller.customer_id:
        raise NotFound()
    return sync
