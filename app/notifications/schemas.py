"""Bodies and answers of the notification endpoints (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from app.enums import NotificationStatus
from app.schemas import ApiModel, ApiResponse

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
    environment: str | None
    original_transaction_id: str | None
    transaction_id: str | None
    signed_date: datetime
    received_at: datetime
    status: NotificationStatus
    outcome: str | None = Field(description="What it changed, or why it changed nothing.")
    subscription_id: int | None


class NotificationList(ApiResponse):
    items: list[NotificationItem]
