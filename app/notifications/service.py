"""Receiving Apple's notifications: verify, store once, queue; and listing what arrived (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.service import get_publisher
from app.apple.client import Integration
from app.apple.notifications import VerifiedNotification, verify_notification
from app.apple.transactions import AppleFinal, AppleTransient
from app.context import Context
from app.db import unit_of_work
from app.errors import InvalidBody, ServiceUnavailable, detail
from app.jobs import queue
from app.models import StoreKit2Integration
from app.notifications.apply import is_actionable
from app.notifications.jobs import JOB_KIND, job_payload
from app.notifications.models import PENDING, STORED, AppleNotification

STORED_ONLY = "stored only: this type changes no subscription"


async def _active_integration(context: Context, publisher_id: int) -> Integration:
    """Read in a unit of work of its own: verification (OCSP with online checks) must not hold
    the request's transaction, and its pooled connection, open while it waits on the network."""
    async with unit_of_work(context.sessions) as lookup:
        row = await lookup.get(StoreKit2Integration, publisher_id)
        if row is None or not row.active:
            raise InvalidBody(detail("publisherId", "no active StoreKit 2 integration"))
        return Integration.from_row(row, context.secrets)


async def _verified(
    context: Context, integration: Integration, signed: str
) -> VerifiedNotification:
    assert context.apple is not None
    try:
        return await verify_notification(context.apple, integration, signed)
    except AppleFinal as exc:
        raise InvalidBody(detail("signedPayload", str(exc))) from exc
    except AppleTransient as exc:
        raise ServiceUnavailable() from exc


def _row(
    publisher_id: int, note: VerifiedNotification, signed: str, now: datetime
) -> dict[str, Any]:
    has_purchase = note.transaction_id is not None and note.original_transaction_id is not None
    actionable = is_actionable(note.notification_type, has_purchase)
    return {
        "publisher_id": publisher_id,
        "notification_uuid": note.notification_uuid,
        "notification_type": note.notification_type,
        "subtype": note.subtype,
        "environment": note.environment,
        "original_transaction_id": note.original_transaction_id,
        "transaction_id": note.transaction_id,
        "signed_at": note.signed_at,
        "received_at": now,
        "status": PENDING if actionable else STORED,
        "outcome": None if actionable else STORED_ONLY,
        "applied_at": None if actionable else now,
        "apple_status": note.apple_status,
        "transaction_info": note.transaction,
        "renewal_info": note.renewal,
        "signed_payload": signed,
    }


async def _store(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert once per (publisher, notificationUUID); None when it was already there."""
    return await session.scalar(
        insert(AppleNotification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["publisher_id", "notification_uuid"])
        .returning(AppleNotification.id)
    )


async def receive(
    session: AsyncSession, context: Context, publisher_id: int, signed: str
) -> tuple[str, bool]:
    """Verify and store a notification, with its job; return its UUID and whether it was known."""
    integration = await _active_integration(context, publisher_id)
    note = await _verified(context, integration, signed)
    now = context.clock.now()
    values = _row(publisher_id, note, signed, now)
    notification_id = await _store(session, values)
    if notification_id is not None and values["status"] == PENDING:
        await queue.enqueue(session, JOB_KIND, job_payload(publisher_id, notification_id), now)
        context.wake_workers_after_commit(session)
    return note.notification_uuid, notification_id is None


async def list_notifications(
    session: AsyncSession, publisher_id: int, status: str | None, limit: int
) -> list[AppleNotification]:
    """The publisher's notifications, newest first."""
    await get_publisher(session, publisher_id)
    statement = select(AppleNotification).where(AppleNotification.publisher_id == publisher_id)
    if status is not None:
        statement = statement.where(AppleNotification.status == status)
    statement = statement.order_by(AppleNotification.id.desc()).limit(limit)
    return list(await session.scalars(statement))
