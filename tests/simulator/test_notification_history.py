"""Get Notification History: every notification the simulator sent or failed to send, with its
send attempts, filters and pages, through Apple's client and verifier, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from appstoreserverlibrary.models.NotificationHistoryResponseItem import (
    NotificationHistoryResponseItem,
)
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2
from appstoreserverlibrary.models.SendAttemptResult import SendAttemptResult
from appstoreserverlibrary.models.Subtype import Subtype

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    Receiver,
    SimApp,
    act,
    apple_error,
    bearer,
    buy,
    closed_port_url,
    register_app,
)

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def _window(**fields: Any) -> NotificationHistoryRequest:
    now = int(time.time() * 1000)
    return NotificationHistoryRequest(startDate=now - HOUR_MS, endDate=now + HOUR_MS, **fields)


async def _all(
    client: AsyncAppStoreServerAPIClient, request: NotificationHistoryRequest
) -> list[NotificationHistoryResponseItem]:
    """Every page, following ``paginationToken`` while ``hasMore``."""
    items, token, more = [], None, True
    while more:
        page = await client.get_notification_history(token, request)
        items += page.notificationHistory or []
        token, more = page.paginationToken, bool(page.hasMore)
    return items


def _kinds(
    sim: SimulatorServer, app: SimApp, items: list[NotificationHistoryResponseItem]
) -> list[tuple[str | None, str | None]]:
    verifier = app.verifier(sim.root_der)
    decoded = [verifier.verify_and_decode_notification(str(i.signedPayload)) for i in items]
    return [(d.rawNotificationType, d.rawSubtype) for d in decoded]


def _results(item: NotificationHistoryResponseItem) -> list[SendAttemptResult | None]:
    return [a.sendAttemptResult for a in item.sendAttempts or []]


async def test_history_has_every_notification_with_its_send_attempts(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    receiver: Receiver,
) -> None:
    bought = await buy(control, app, notify=True)
    original = bought["transactionId"]
    await act(control, original, "renew", failDelivery="SOCKET_ISSUE")
    receiver.status_code = 503
    refunded = (await act(control, original, "refund"))["notification"]
    receiver.status_code = 200
    await control.post(f"/sim/notifications/{refunded['notificationUuid']}/resend")
    items = await _all(apple(app), _window())
    assert _kinds(sim, app, items) == [
        ("SUBSCRIBED", "INITIAL_BUY"),
        ("DID_RENEW", None),
        ("REFUND", None),
    ]
    assert [_results(i) for i in items] == [
        [SendAttemptResult.SUCCESS],
        [SendAttemptResult.SOCKET_ISSUE],
        [SendAttemptResult.UNSUCCESSFUL_HTTP_RESPONSE_CODE, SendAttemptResult.SUCCESS],
    ]
    assert items[2].signedPayload == refunded["signedPayload"]
    dates = [int(a.attemptDate or 0) for a in items[2].sendAttempts or []]
    assert dates == sorted(dates) and dates[0] == refunded["attempts"][0]["at"]


async def test_a_notification_sent_while_the_server_was_down_is_in_history(
    sim: SimulatorServer, control: httpx.AsyncClient, apple: MakeClient
) -> None:
    app = await register_app(control, closed_port_url())
    bought = await buy(control, app)
    refunded = (await act(control, bought["transactionId"], "refund"))["notification"]
    assert refunded["attempts"][0]["sendAttemptResult"] == "SOCKET_ISSUE"
    failures = await _all(apple(app), _window(onlyFailures=True))
    assert [i.signedPayload for i in failures] == [refunded["signedPayload"]]
    assert _results(failures[0]) == [SendAttemptResult.SOCKET_ISSUE]
    decoded = app.verifier(sim.root_der).verify_and_decode_notification(refunded["signedPayload"])
    assert decoded.rawNotificationType == "REFUND"


async def test_only_failures_leaves_out_what_reached_the_server(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, notify=True)
    failed = (await act(control, bought["transactionId"], "renew", failDelivery="TIMED_OUT"))[
        "notification"
    ]
    recovered = (await act(control, bought["transactionId"], "renew", failDelivery="NO_RESPONSE"))[
        "notification"
    ]
    await control.post(f"/sim/notifications/{recovered['notificationUuid']}/resend")
    failures = await _all(apple(app), _window(onlyFailures=True))
    assert [i.signedPayload for i in failures] == [failed["signedPayload"]]


async def test_history_filters_by_type_subtype_and_customer(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    first = await buy(control, app, account="kim", notify=True)
    second = await buy(control, app, "consumable", account="kim", notify=True)
    other = await buy(control, app, account="lou", notify=True)
    await act(control, first["transactionId"], "expire", subtype="VOLUNTARY")
    await act(control, other["transactionId"], "expire", subtype="BILLING_RETRY")
    client = apple(app)
    expired = await _all(client, _window(notificationType=NotificationTypeV2.EXPIRED))
    assert _kinds(sim, app, expired) == [("EXPIRED", "VOLUNTARY"), ("EXPIRED", "BILLING_RETRY")]
    voluntary = _window(
        notificationType=NotificationTypeV2.EXPIRED, notificationSubtype=Subtype.VOLUNTARY
    )
    assert _kinds(sim, app, await _all(client, voluntary)) == [("EXPIRED", "VOLUNTARY")]
    kims = await _all(client, _window(transactionId=second["transactionId"]))
    assert _kinds(sim, app, kims) == [
        ("SUBSCRIBED", "INITIAL_BUY"),
        ("ONE_TIME_CHARGE", None),
        ("EXPIRED", "VOLUNTARY"),
    ]


async def test_history_comes_twenty_a_page(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    made = [
        (
            await control.post(
                f"/sim/purchases/{bought['transactionId']}/notify",
                json={
                    "notificationType": "PRICE_INCREASE",
                    "subtype": "PENDING",
                    "failDelivery": "OTHER",
                },
            )
        ).json()["notification"]["signedPayload"]
        for _ in range(25)
    ]
    client, request = apple(app), _window()
    first = await client.get_notification_history(None, request)
    assert (len(first.notificationHistory or []), first.hasMore) == (20, True)
    second = await client.get_notification_history(first.paginationToken, request)
    assert (len(second.notificationHistory or []), second.hasMore) == (5, False)
    pages = (first.notificationHistory or []) + (second.notificationHistory or [])
    assert [i.signedPayload for i in pages] == made
    assert second.paginationToken


async def test_another_apps_notifications_are_not_in_history(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient, receiver: Receiver
) -> None:
    await buy(control, app, notify=True)
    stranger = await register_app(control, receiver.url)
    assert await _all(apple(stranger), _window()) == []


@pytest.mark.parametrize(
    ("prefix", "visible"), [("/sandbox", "Sandbox"), ("/production", "Production")]
)
async def test_environment_prefixes_show_one_environments_history(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    prefix: str,
    visible: str,
) -> None:
    for environment in ("Sandbox", "Production"):
        await buy(control, app, "consumable", environment=environment, notify=True)
    scoped = await _all(apple(app, base_url=sim.base_url + prefix), _window())
    everything = await _all(apple(app), _window())
    assert len(everything) == 2 and len(scoped) == 1
    verifier = app.verifier(sim.root_der, Environment(visible))
    decoded = verifier.verify_and_decode_notification(str(scoped[0].signedPayload))
    assert decoded.data is not None and decoded.data.rawEnvironment == visible


def _body(**changes: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"startDate": now - HOUR_MS, "endDate": now} | changes


NOW = int(time.time() * 1000)
INVALID: list[tuple[str, dict[str, Any], int]] = [
    ("", {"startDate": None}, 4000015),
    ("", {"startDate": "yesterday"}, 4000015),
    ("", {"endDate": None}, 4000016),
    ("", {"endDate": 1.5}, 4000016),
    ("", {"startDate": NOW - 181 * DAY_MS}, 4000012),
    ("/sandbox", {"startDate": NOW - 31 * DAY_MS}, 4000012),
    ("", {"startDate": NOW, "endDate": NOW - 1}, 4000013),
    ("", {"notificationType": "BIRTHDAY"}, 4000018),
    ("", {"notificationType": "EXPIRED", "notificationSubtype": "INITIAL_BUY"}, 4000018),
    ("", {"notificationType": "REFUND", "notificationSubtype": "SUMMARY"}, 4000018),
    ("", {"notificationSubtype": "VOLUNTARY"}, 4000018),
    ("", {"notificationType": "REFUND", "transactionId": "1"}, 4000019),
    ("", {"transactionId": "abc"}, 4000006),
    ("", {"onlyFailures": "yes"}, 4000000),
]


@pytest.mark.parametrize(("prefix", "changes", "code"), INVALID)
async def test_history_requests_are_checked_as_apple_checks_them(
    sim: SimulatorServer,
    app: SimApp,
    apple: MakeClient,
    prefix: str,
    changes: dict[str, Any],
    code: int,
) -> None:
    body = {k: v for k, v in _body(**changes).items() if v is not None}
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.post(
            f"{prefix}/inApps/v1/notifications/history", json=body, headers=bearer(apple(app))
        )
    assert answer.headers["content-type"] == "application/json"
    assert (answer.status_code, answer.json()["errorCode"]) == (400, code)


async def test_a_start_within_thirty_days_is_fine_in_the_sandbox_and_the_future_is_now(
    sim: SimulatorServer, app: SimApp, apple: MakeClient
) -> None:
    now = int(time.time() * 1000)
    request = NotificationHistoryRequest(startDate=now - 29 * DAY_MS, endDate=now + 365 * DAY_MS)
    sandbox = apple(app, base_url=sim.base_url + "/sandbox")
    assert (await sandbox.get_notification_history(None, request)).notificationHistory == []
    production = NotificationHistoryRequest(startDate=now - 179 * DAY_MS, endDate=now)
    assert (await apple(app).get_notification_history(None, production)).hasMore is False


async def test_pagination_tokens_are_checked(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    for _ in range(21):
        await act(
            control, bought["transactionId"], "auto-renew", enabled=True, failDelivery="OTHER"
        )
    client, request = apple(app), _window()
    token = (await client.get_notification_history(None, request)).paginationToken
    assert await apple_error(client.get_notification_history("garbled!", request)) == (400, 4000014)
    other = _window(onlyFailures=True)
    assert await apple_error(client.get_notification_history(token, other)) == (400, 4000017)
    assert await apple_error(
        client.get_notification_history(None, _window(transactionId="1999999999999999"))
    ) == (404, 4040010)
