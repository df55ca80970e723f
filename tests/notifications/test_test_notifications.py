"""Test notifications for the operator (docs/api.md §6): Apple's Request a Test Notification, then its
status combined with whether this service received the TEST notification."""

from __future__ import annotations

from typing import Any

from tests.helpers.api import ADMIN, assert_envelope, new_publisher
from tests.helpers.appstore import Apple
from tests.helpers.shop import add_app
from tests.helpers.simulator import closed_port_url, eventually


def _url(apple: Apple, token: str | None = None) -> str:
    base = f"/admin/publishers/{apple.shop.publisher.id}/storekit2/test-notification"
    return base if token is None else f"{base}/{token}"


async def _request(apple: Apple, **body: Any) -> str:
    answer = await apple.shop.client.post(_url(apple), json=body or None, headers=ADMIN)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["testNotificationToken"])


async def _attempted(apple: Apple, token: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        answer = await apple.shop.client.get(_url(apple, token), headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body = dict(answer.json())
        return body if body["apple"]["sendAttempts"] else None

    return await eventually(probe)


async def test_a_test_notification_round_trips(apple: Apple) -> None:
    token = await _request(apple)
    status = await _attempted(apple, token)
    assert set(status) == {"testNotificationToken", "receivedAt", "apple"}
    assert status["testNotificationToken"] == token
    [attempt] = status["apple"]["sendAttempts"]
    assert attempt["sendAttemptResult"] == "SUCCESS"
    assert attempt["attemptDate"] is not None
    [note] = await apple.notifications()
    assert (note["notificationType"], note["source"], note["status"]) == (
        "TEST",
        "posted",
        "stored",
    )
    assert status["receivedAt"] == note["receivedAt"]


async def test_a_test_notification_that_did_not_arrive(apple: Apple) -> None:
    await apple.notify_to(closed_port_url())
    token = await _request(apple, bundleId=apple.shop.bundle_id)
    status = await _attempted(apple, token)
    assert [a["sendAttemptResult"] for a in status["apple"]["sendAttempts"]] == ["SOCKET_ISSUE"]
    assert status["receivedAt"] is None
    assert await apple.notifications() == []


async def test_the_app_named_is_the_one_tested(apple: Apple) -> None:
    other = await add_app(apple.shop)
    await apple.notify_to(apple.url(), other)
    await apple.notify_to(closed_port_url())  # the first app is not wired
    status = await _attempted(apple, await _request(apple, bundleId=other))
    assert status["receivedAt"] is not None


async def test_the_publishers_own_token_works(apple: Apple) -> None:
    headers = apple.shop.publisher.headers
    answer = await apple.shop.client.post(_url(apple), headers=headers)
    assert answer.status_code == 202, answer.text
    token = answer.json()["testNotificationToken"]
    await _attempted(apple, token)
    assert (await apple.shop.client.get(_url(apple, token), headers=headers)).status_code == 200


async def test_refusals_answer_in_the_envelope(apple: Apple) -> None:
    client = apple.shop.client
    refused = assert_envelope(
        await client.post(_url(apple), json={"bundleId": "com.nobody.app"}, headers=ADMIN),
        400,
        "REQ0001",
    )
    assert refused["details"][0]["field"] == "bundleId"  # type: ignore[index]
    assert_envelope(
        await client.post(_url(apple), json={"bundleId": 42}, headers=ADMIN), 400, "REQ0001"
    )
    assert_envelope(await client.get(_url(apple, "0" * 20), headers=ADMIN), 404, "REQ0100")
    assert_envelope(await client.get(_url(apple, "a%20b"), headers=ADMIN), 400, "REQ0003")
    assert_envelope(await client.post(_url(apple)), 401, "AUTH0001")
    other = await new_publisher(client)
    url = f"/admin/publishers/{other.id}/storekit2/test-notification"
    assert_envelope(await client.post(url, headers=ADMIN), 500, "SK2C0004")


async def test_apple_without_a_notification_url_is_explained(apple: Apple) -> None:
    await apple.notify_to(None)
    answer = await apple.shop.client.post(_url(apple), headers=ADMIN)
    body = assert_envelope(answer, 400, "REQ0001")
    assert "4040007" in body["details"][0]["problem"]  # type: ignore[index]


async def test_apple_unavailable_is_a_503(apple: Apple) -> None:
    await apple.shop.fault("server_error")
    answer = await apple.shop.client.post(_url(apple), headers=ADMIN)
    assert_envelope(answer, 503, "S0002")
    assert answer.headers["retry-after"]


async def test_a_test_notification_not_attempted_yet_has_no_attempts(apple: Apple) -> None:
    """Apple answers 4040008 until its first attempt; the simulator attempts at once, so it is
    told to answer that."""
    token = await _request(apple)
    await apple.shop.fault("not_found", errorCode=4040008, times=1)
    answer = await apple.shop.client.get(_url(apple, token), headers=ADMIN)
    assert (await apple.shop.sim.get("/sim/faults")).json() == []  # used: it was Apple's answer
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "testNotificationToken": token,
        "receivedAt": None,
        "apple": {"sendAttempts": []},
    }
