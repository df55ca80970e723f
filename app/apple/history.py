"""Apple's notification calls (docs/api.md §6): Get Notification History, a page at a time, and Request
a Test Notification with Get Test Notification Status. Every call goes through
`transactions.call`, within Apple's budget: the history as background work, test notifications
as the operator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appstoreserverlibrary.models.CheckTestNotificationResponse import (
    CheckTestNotificationResponse,
)
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from appstoreserverlibrary.models.NotificationHistoryResponse import NotificationHistoryResponse
from appstoreserverlibrary.models.SendTestNotificationResponse import SendTestNotificationResponse

from app.apple.gateway import AppleApp, AppleGateway
from app.apple.transactions import call
from app.apple.verifier import millis_to_datetime

# Apple's error codes of the history call that say something about the request, not about Apple.
START_DATE_TOO_FAR_IN_PAST = 4000012
START_DATE_AFTER_END_DATE = 4000013
INVALID_PAGINATION_TOKEN = 4000014
PAGINATION_TOKEN_EXPIRED = 4000017
TEST_NOTIFICATION_NOT_FOUND = 4040008
NOTIFICATION_URL_NOT_FOUND = 4040007


def millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True)
class HistoryPage:
    """One page of the history: the notifications' signed payloads, in Apple's order, and the
    token of the next page when there is one."""

    signed_payloads: list[str]
    next_token: str | None


async def history_page(
    gateway: AppleGateway,
    app: AppleApp,
    environment: Environment,
    window: tuple[datetime, datetime],
    token: str | None,
) -> HistoryPage:
    """The page of the window (`startDate`, `endDate`) that `token` leads to (None: the first).
    Every page of a window is asked with the same body, as Apple wants."""
    request = NotificationHistoryRequest(startDate=millis(window[0]), endDate=millis(window[1]))
    response: NotificationHistoryResponse = await call(
        gateway,
        app,
        environment,
        "get_notification_history",
        lambda client: client.get_notification_history(token, request),
        background=True,
    )
    items = response.notificationHistory or []
    signed = [str(item.signedPayload) for item in items if item.signedPayload]
    more = bool(response.hasMore) and bool(response.paginationToken)
    return HistoryPage(signed, str(response.paginationToken) if more else None)


async def request_test_notification(
    gateway: AppleGateway, app: AppleApp, environment: Environment
) -> str:
    """Ask Apple to post a TEST notification to the app's notification URL; its token."""
    response: SendTestNotificationResponse = await call(
        gateway,
        app,
        environment,
        "request_test_notification",
        lambda client: client.request_test_notification(),
    )
    return str(response.testNotificationToken)


@dataclass(frozen=True)
class SendAttempt:
    attempt_date: datetime | None
    result: str | None


@dataclass(frozen=True)
class NotificationTestStatus:
    """Apple's record of a test notification: the payload it sent and each attempt."""

    signed_payload: str | None
    attempts: list[SendAttempt]


async def apple_test_status(
    gateway: AppleGateway, app: AppleApp, environment: Environment, token: str
) -> NotificationTestStatus:
    response: CheckTestNotificationResponse = await call(
        gateway,
        app,
        environment,
        "get_test_notification_status",
        lambda client: client.get_test_notification_status(token),
    )
    attempts = [
        SendAttempt(millis_to_datetime(a.attemptDate), a.rawSendAttemptResult)
        for a in response.sendAttempts or []
    ]
    signed = str(response.signedPayload) if response.signedPayload else None
    return NotificationTestStatus(signed, attempts)
