"""App Store Server Notifications V2 (SPEC §6): thin handlers over app.notifications.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import errors as e
from app.api.auth import PublisherAccess, PublisherIdPath
from app.api.deps import Ctx
from app.api.openapi import PUBLIC, error_responses
from app.db import Row
from app.enums import NotificationStatus
from app.notifications import service
from app.notifications.schemas import (
    NotificationItem,
    NotificationList,
    NotificationReceived,
    SignedNotification,
)

router = APIRouter()


@router.post(
    "/apple/notifications/{publisherId}",
    tags=["apple"],
    operation_id="receiveAppleNotification",
    responses=error_responses(e.InvalidBody, e.InvalidPathParameters, common=PUBLIC),
)
async def receive_notification(
    publisher_id: PublisherIdPath, body: SignedNotification, context: Ctx
) -> NotificationReceived:
    """Apple posts here, with no credential: the signed payload is the proof."""
    c, signed, now = context, body.signed_payload, context.clock.now()
    # Stored once per notificationUUID: a repeat after a lost connection stores nothing twice.
    uuid, duplicate = await service.receive(
        c.db.retrying, c.apple, c.secrets, publisher_id, signed, now
    )
    if not duplicate:
        context.waker.poke()
    return NotificationReceived(notification_uuid=uuid, duplicate=duplicate)


def _item(row: Row) -> NotificationItem:
    return NotificationItem(
        notification_uuid=row["notification_uuid"],
        notification_type=row["notification_type"],
        subtype=row["subtype"],
        environment=row["environment"],
        original_transaction_id=row["original_transaction_id"],
        transaction_id=row["transaction_id"],
        signed_date=row["signed_at"],
        received_at=row["received_at"],
        status=NotificationStatus(row["status"]),
        outcome=row["outcome"],
        subscription_id=row["subscription_id"],
    )


@router.get(
    "/admin/publishers/{publisherId}/notifications",
    tags=["admin"],
    operation_id="listAppleNotifications",
    responses=error_responses(e.InvalidBody, e.InvalidPathParameters, e.NotFound),
)
async def list_notifications(
    publisher_id: PublisherIdPath,
    _: PublisherAccess,
    context: Ctx,
    status: Annotated[NotificationStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> NotificationList:
    """What Apple sent, newest first, and what each notification did."""
    rows = await service.list_notifications(context.db, publisher_id, status, limit)
    return NotificationList(items=[_item(row) for row in rows])
