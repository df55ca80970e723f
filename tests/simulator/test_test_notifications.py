"""Request a Test Notification and Get Test Notification Status, through Apple's client."""

from __future__ import annotations

import time
import uuid

import httpx
from appstoreserverlibrary.api_client import APIException, AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.CheckTestNotificationResponse import (
    CheckTestNotificationResponse,
)
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2
from appstoreserverlibrary.models.SendAttemptResult import SendAttemptResult

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    Receiver,
    SimApp,
    apple_error,
    closed_port_url,
    eventually,
    register_app,
)


async def _status(
    client: AsyncAppStoreServerAPIClient, token: str
) -> CheckTestNotificationResponse:
    """The status once the simulator has tried to post the notification (4040008 until then)."""

    async def probe() -> CheckTestNotificationResponse | None:
        try:
            return await client.get_test_notification_status(token)
        except APIException as error:
            if error.raw_api_error != 4040008:
                raise
            return None

    return await eventually(probe)


async def test_a_test_notification_reaches_the_server_and_says_so(
    sim: SimulatorServer, app: SimApp, apple: MakeClient, receiver: Receiver
) -> None:
    client = apple(app)
    token = str((await client.request_test_notification()).testNotificationToken)
    status = await _status(client, token)
    assert [a.sendAttemptResult for a in status.sendAttempts or []] == [SendAttemptResult.SUCCESS]
    receiver.wait_for(str(status.signedPayload))
    decoded = app.verifier(sim.root_der).verify_and_decode_notification(str(status.signedPayload))
    assert (decoded.notificationType, decoded.subtype) == (NotificationTypeV2.TEST, None)
    assert decoded.data is not None
    assert (decoded.data.bundleId, decoded.data.appAppleId, decoded.data.environment) == (
        app.bundle_id,
        app.app_apple_id,
        Environment.SANDBOX,
    )
    now = int(time.time() * 1000)
    request = NotificationHistoryRequest(
        startDate=now - 60_000, endDate=now + 60_000, notificationType=NotificationTypeV2.TEST
    )
    history = await client.get_notification_history(None, request)
    assert [i.signedPayload for i in history.notificationHistory or []] == [status.signedPayload]


async def test_a_failed_test_notification_says_why(
    sim: SimulatorServer, control: httpx.AsyncClient, apple: MakeClient
) -> None:
    app = await register_app(control, closed_port_url())
    client = apple(app)
    token = str((await client.request_test_notification()).testNotificationToken)
    status = await _status(client, token)
    assert [a.sendAttemptResult for a in status.sendAttempts or []] == [
        SendAttemptResult.SOCKET_ISSUE
    ]


async def test_at_the_production_prefix_the_test_is_for_production(
    sim: SimulatorServer, app: SimApp, apple: MakeClient
) -> None:
    client = apple(app, Environment.PRODUCTION, base_url=sim.base_url + "/production")
    token = str((await client.request_test_notification()).testNotificationToken)
    status = await _status(client, token)
    verifier = app.verifier(sim.root_der, Environment.PRODUCTION)
    decoded = verifier.verify_and_decode_notification(str(status.signedPayload))
    assert decoded.data is not None and decoded.data.environment == Environment.PRODUCTION


async def test_test_notification_errors(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    client = apple(app)
    token = str((await client.request_test_notification()).testNotificationToken)
    await _status(client, token)
    stranger = await register_app(control, None)
    unknown = f"{uuid.uuid4()}_{int(time.time() * 1000)}"
    assert await apple_error(client.get_test_notification_status("not-a-token")) == (400, 4000020)
    assert await apple_error(client.get_test_notification_status(unknown)) == (404, 4040008)
    assert await apple_error(apple(stranger).get_test_notification_status(token)) == (404, 4040008)
    assert await apple_error(apple(stranger).request_test_notification()) == (404, 4040007)
