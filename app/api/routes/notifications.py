"""App Store Server Notifications V2 (docs/api.md §6): thin handlers over app.notifications.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app import errors as e
from app.api.auth import PublisherAccess, PublisherIdPath
from app.api.deps import Ctx
from app.api.openapi import PUBLIC, error_responses
from app.db import Row
from app.enums import NotificationSource, NotificationStatus
from app.notifications import probe, service
from app.notifications.schemas import (
    AppleTestStatus,
    NotificationItem,
    NotificationList,
    NotificationReceived,
    NotificationTestAnswer,
    NotificationTestRequest,
    NotificationTestToken,
    SendAttemptItem,
    SignedNotification,
)

router = APIRouter()


@router.post(
    "/apple/notifications/{publisherId}",
    tags=["apple"],
    operation_id="receiveAppleNotification",
    responses=error_responses(
        e.InvalidBody, e.InvalidPathParameters, e.PayloadTooLarge, common=PUBLIC
    ),
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
        original_transaction_id=row["original_transaction_id"],
        source=NotificationSource(row["source"]),
        received_at=row["received_at"],
        applied_at=row["applied_at"],
        outcome=row["outcome"],
        status=NotificationStatus(row["status"]),
        environment=row["environment"],
        transaction_id=row["transaction_id"],
        signed_date=row["signed_at"],
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
    """What Apple sent (posted, or recovered from its notification history), newest first, and
    what each notification did."""
    rows = await service.list_notifications(context.db, publisher_id, status, limit)
    return NotificationList(items=[_item(row) for row in rows])


TokenPath = Annotated[
    str, Path(alias="token", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:-]+$")
]


@router.post(
    "/admin/publishers/{publisherId}/storekit2/test-notification",
    tags=["admin"],
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="requestTestNotification",
    summary="Ask Apple to post a TEST notification to this service",
    responses=error_responses(
        e.InvalidBody, e.InvalidPathParameters, e.NotFound, e.IntegrationNotActive
    ),
)
async def request_test_notification(
    publisher_id: PublisherIdPath,
    _: PublisherAccess,
    context: Ctx,
    body: NotificationTestRequest | None = None,
) -> NotificationTestToken:
    """Apple posts the TEST notification to the app's App Store Server Notifications URL; its
    status says whether it arrived (`GET …/test-notification/{token}`)."""
    c, bundle_id = context, body.bundle_id if body is not None else None
    token = await probe.request_probe(
        c.db, c.apple, c.secrets, publisher_id, bundle_id, c.clock.now()
    )
    return NotificationTestToken(test_notification_token=token)


@router.get(
    "/admin/publishers/{publisherId}/storekit2/test-notification/{token}",
    tags=["admin"],
    operation_id="getTestNotificationStatus",
    summary="Apple's attempts to post a test notification, and whether it arrived",
    responses=error_responses(e.InvalidPathParameters, e.NotFound),
)
async def get_test_notification(
    publisher_id: PublisherIdPath, token: TokenPath, _: PublisherAccess, context: Ctx
) -> NotificationTestAnswer:
    c = context
    found = await probe.probe_status(c.db, c.apple, c.secrets, publisher_id, token, c.clock.now())
    attempts = [
        SendAttemptItem(attempt_date=a.attempt_date, send_attempt_result=a.result)
        for a in found.attempts
    ]
    return NotificationTestAnswer(
        test_notification_token=found.token,
        received_at=found.received_at,
        apple=AppleTestStatus(send_attempts=attempts),
    )
