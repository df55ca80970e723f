"""Register, transfer and poll (SPEC §3). The sync row and its job commit together, before the 202."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, union_all
from sqlalchemy.dialects.postgresql import insert
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
from app.jobs import queue
from app.models import Customer, StoreKit2Integration, Subscription, Synchronization
from app.purchases.schemas import PurchaseRequest

REGISTER, TRANSFER = "register", "transfer"
SYNC_JOB = "sync"


def job_payload(publisher_id: int, sync_id: str) -> dict[str, object]:
    return {"publisherId": publisher_id, "synchronizationId": sync_id}


async def _require_integration(session: AsyncSession, publisher_id: int) -> None:
    active = await session.scalar(
        select(StoreKit2Integration.active).where(StoreKit2Integration.publisher_id == publisher_id)
    )
    if not active:
        raise IntegrationNotActive()


async def _require_customer(session: AsyncSession, publisher_id: int, customer_id: int) -> None:
    found = await session.scalar(
        select(Customer.id).where(Customer.id == customer_id, Customer.publisher_id == publisher_id)
    )
    if found is None:
        raise CustomerNotFound()


async def known_purchase(
    session: AsyncSession, publisher_id: int, transaction_id: str
) -> str | None:
    """The original transaction of a purchase this publisher has synchronized, if any."""
    from_subscriptions = select(Subscription.original_transaction_id).where(
        Subscription.publisher_id == publisher_id,
        (Subscription.original_transaction_id == transaction_id)
        | (Subscription.latest_transaction_id == transaction_id),
    )
    from_syncs = select(Synchronization.original_transaction_id).where(
        Synchronization.publisher_id == publisher_id,
        Synchronization.transaction_id == transaction_id,
        Synchronization.original_transaction_id.is_not(None),
    )
    original = await session.scalar(union_all(from_subscriptions, from_syncs).limit(1))
    return str(original) if original is not None else None


async def _active_purchase(session: AsyncSession, publisher_id: int, transaction_id: str) -> str:
    original = await known_purchase(session, publisher_id, transaction_id)
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


def _replay(existing: Synchronization, fingerprint: str) -> str:
    if existing.request_hash != fingerprint:
        raise InvalidHeaders()
    return existing.id


def _conflict(kind: str) -> CleengError:
    return TransferInProgress() if kind == TRANSFER else SyncInProgress()


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
    await _require_integration(session, publisher_id)
    await _require_customer(session, publisher_id, body.cleeng_customer_id)
    fingerprint = body.fingerprint(kind)
    if correlation_id is not None:
        existing = await session.get(Synchronization, (publisher_id, correlation_id))
        if existing is not None:
            return _replay(existing, fingerprint)
    purchase_key: str | None
    if kind == TRANSFER:
        purchase_key = await _active_purchase(session, publisher_id, body.transaction_id)
    else:
        purchase_key = await known_purchase(session, publisher_id, body.transaction_id)
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
        "status": "processing",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    try:
        inserted = await session.scalar(
            insert(Synchronization)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["publisher_id", "id"])
            .returning(Synchronization.id)
        )
    except IntegrityError as exc:  # the partial unique indexes: one unfinalized sync
        raise _conflict(kind) from exc
    if inserted is None:  # the same Correlation-Id raced us: a replay after all
        existing = await session.get_one(Synchronization, (publisher_id, sync_id))
        return _replay(existing, fingerprint)
    await queue.enqueue(session, SYNC_JOB, job_payload(publisher_id, sync_id), now)
    return sync_id


async def get_sync(session: AsyncSession, caller: Caller, sync_id: str) -> Synchronization:
    sync = await session.get(Synchronization, (caller.publisher_id, sync_id))
    if sync is None:
        raise NotFound()
    if caller.kind == "customer" and sync.customer_id != caller.customer_id:
        raise NotFound()
    return sync
