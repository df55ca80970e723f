"""Bodies and answers of the notification endpoints (docs/api.md §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from app.enums import NotificationSource, NotificationStatus
from app.schemas import ApiModel, ApiResponse, BundleId

MAX_SIGNED_PAYLOAD = 60_000


class SignedNotification(ApiModel):
    """Apple's body: `{"signedPayload": "<JWS>"}`; fields Apple may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    signed_payload: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_SIGNED_PAYLOAD), Field(repr=False)
    ]


class NotificationReceived(ApiResponse):
    notification_uuid: str = Field(alias="notificationUUID")
    duplicate: bool = Field(description="True when this notificationUUID was already stored.")


class NotificationItem(ApiResponse):
    notification_uuid: str = Field(alias="notificationUUID")
    notification_type: str
    subtype: str | None
    original_transaction_id: str | None
    source: NotificationSource = Field(
        description="`posted` by Apple, or `history`: recovered from Apple's notification history."
    )
    received_at: datetime
    applied_at: datetime | None = Field(description="When it was applied; null while pending.")
    outcome: str | None = Field(description="What it changed, or why it changed nothing.")
    status: NotificationStatus
    environment: str | None
    transaction_id: str | None
    signed_date: datetime
    subscription_id: int | None


class NotificationList(ApiResponse):
    items: list[NotificationItem]


class NotificationTestRequest(ApiModel):
    """`POST …/storekit2/test-notification`: the app to test (default: the publisher's oldest)."""

    bundle_id: BundleId | None = None


class NotificationTestToken(ApiResponse):
    test_notification_token: str


class SendAttemptItem(ApiResponse):
    attempt_date: datetime | None
    send_attempt_result: str | None = Field(
        description="Apple's sendAttemptResult: SUCCESS, SOCKET_ISSUE, TIMED_OUT, …"
    )


class AppleTestStatus(ApiResponse):
    send_attempts: list[SendAttemptItem]


class NotificationTestAnswer(ApiResponse):
    test_notification_token: str
    received_at: datetime | None = Field(
        description="When this service received the TEST notification; null if it has not."
    )
    apple: AppleTestStatus
