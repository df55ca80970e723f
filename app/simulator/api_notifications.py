"""Apple's notification calls: Get Notification History, Request a Test Notification and Get Test
Notification Status.

A test notification (``TEST``, with the app and the environment in its ``data``) is posted to the
app's notification URL after the call has answered, as Apple does; until its first attempt, its
status is 4040008. Without a notification URL, the request is 4040007. A token that is not one
the simulator could have made is 4000020.
"""

from __future__ import annotations

import re
import uuid
from typing import cast

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.simulator.calls import Scope, begin, json_object
from app.simulator.delivery import Notifier
from app.simulator.errors import ErrorCode, apple_error, json_response
from app.simulator.model import Environment, NotificationRecord, TestNotification
from app.simulator.notification_history import history_body, parse_request, send_attempts
from app.simulator.notifications import deliver, test_notification
from app.simulator.state import SimulatorState

TOKEN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_[0-9]{1,16}")


def notifier_of(request: Request) -> Notifier:
    return cast(Notifier, request.app.state.notifier)


async def _send(state: SimulatorState, notifier: Notifier, record: NotificationRecord) -> None:
    await deliver(state, notifier, record)
    state.persist()


def request_test(scope: Scope, notifier: Notifier) -> dict[str, object]:
    state, app = scope.state, scope.app
    if state.notification_url(app.bundle_id) is None:
        raise apple_error(ErrorCode.SERVER_NOTIFICATION_URL_NOT_FOUND)
    record = test_notification(state, app, scope.acting_environment)
    token = f"{uuid.uuid4()}_{state.now()}"
    state.test_notifications[token] = TestNotification(
        token, app.bundle_id, record.notification_uuid
    )
    notifier.spawn(_send(state, notifier, record))
    return {"testNotificationToken": token}


def test_status(scope: Scope, token: str) -> dict[str, object]:
    if not TOKEN.fullmatch(token):
        raise apple_error(ErrorCode.INVALID_TEST_NOTIFICATION_TOKEN)
    test = scope.state.test_notifications.get(token)
    record = scope.state.notifications.get(test.notification_uuid) if test else None
    if test is None or test.bundle_id != scope.app.bundle_id or record is None:
        raise apple_error(ErrorCode.TEST_NOTIFICATION_NOT_FOUND)
    if not record.attempts:
        raise apple_error(ErrorCode.TEST_NOTIFICATION_NOT_FOUND)
    return {"signedPayload": record.signed_payload, "sendAttempts": send_attempts(record)}


def add_routes(router: APIRouter, environment: Environment | None) -> None:
    @router.post("/inApps/v1/notifications/history")
    async def get_notification_history(request: Request) -> Response:
        scope = await begin(request, environment, "notification_history")
        query = parse_request(scope, await json_object(request))
        token = request.query_params.get("paginationToken")
        return json_response(history_body(scope, query, token))

    @router.post("/inApps/v1/notifications/test")
    async def request_a_test_notification(request: Request) -> Response:
        scope = await begin(request, environment, "test_notification")
        return json_response(request_test(scope, notifier_of(request)))

    @router.get("/inApps/v1/notifications/test/{token}")
    async def get_test_notification_status(token: str, request: Request) -> Response:
        scope = await begin(request, environment, "test_notification_status")
        return json_response(test_status(scope, token))
