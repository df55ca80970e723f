"""Receiving: verified, stored once, answered 200; anything unverifiable is refused with 400 and
leaves nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from app.apple import notifications as apple_notifications
from app.apple.notifications import VerifiedNotification
from app.clock import MovableClock
from app.config import Settings
from app.enums import JobKind
from app.jobs import queue
from app.main import create_app
from app.metrics import APPLE_NOTIFICATIONS_OUT_OF_DATE as OUT_OF_DATE
from app.simulator.certs import generate_chain
from app.simulator.server import BackgroundServer, SimulatorServer
from app.simulator.signing import JwsSigner
from tests.helpers.api import ADMIN
from tests.helpers.appstore import Apple, topics
from tests.helpers.shop import Shop, open_shop

JsonDict = dict[str, Any]
FORGER = JwsSigner(generate_chain("forger"))


def claims(signed: str) -> JsonDict:
    return dict(jwt.decode(signed, options={"verify_signature": False}))


def refused(answer: httpx.Response, field: str = "signedPayload") -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["code"], body["message"]) == ("REQ0001", "Invalid body")
    assert body["details"][0]["field"] == field


async def held_back(apple: Apple) -> tuple[JsonDict, str]:
    """A real notification about a synchronized purchase, not delivered (no URL): the test posts
    it, or a forgery of it, itself. Its claims and its signed payload."""
    bought, _ = await apple.subscribed()
    await apple.notify_to(None)
    done = await apple.act(bought["transactionId"], "renew", expect=None)
    await apple.notify_to(apple.url())
    signed = str(done["notification"]["signedPayload"])
    return claims(signed), signed


async def post(apple: Apple, signed: Any, url: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url or apple.url(), json={"signedPayload": signed})


async def nothing_stored(apple: Apple) -> None:
    assert await apple.stored() == 0
    assert await apple.jobs() == 0
    assert await apple.worker.drain() == 0


async def test_a_duplicate_is_stored_once_and_applied_once(apple: Apple) -> None:
    bought, _ = await apple.subscribed()
    done = await apple.act(bought["transactionId"], "renew")
    notification_uuid = done["notification"]["notificationUuid"]
    assert await apple.worker.drain() == 1
    resent = await apple.resend(notification_uuid)
    assert [a["statusCode"] for a in resent["attempts"]] == [200, 200]
    again = await post(apple, done["notification"]["signedPayload"])
    assert again.json() == {"notificationUUID": notification_uuid, "duplicate": True}
    assert await apple.stored() == 1
    assert await apple.jobs() == 0
    assert topics(await apple.events()) == ["subscriptionRenewed"]


async def test_a_job_that_runs_twice_applies_once(apple: Apple) -> None:
    bought, _ = await apple.subscribed()
    await apple.act(bought["transactionId"], "expire")
    assert await apple.worker.drain() == 1
    note_id = await apple.scalar("SELECT max(id) FROM apple_notifications")
    payload = {"publisherId": apple.shop.publisher.id, "notificationId": note_id}
    context = apple.shop.context
    await queue.enqueue(context.db, JobKind.APPLE_NOTIFICATION, payload, context.clock.now())
    assert await apple.worker.drain() == 1
    assert topics(await apple.events()) == ["subscriptionExpired"]


async def test_a_genuine_notification_is_answered_200(apple: Apple) -> None:
    payload, signed = await held_back(apple)
    answer = await post(apple, signed)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"notificationUUID": payload["notificationUUID"], "duplicate": False}
    assert await apple.stored() == 1
    assert await apple.jobs() == 1
    assert await apple.worker.drain() == 1
    assert topics(await apple.events()) == ["subscriptionRenewed"]


async def test_a_payload_signed_by_another_chain_is_refused(apple: Apple) -> None:
    forged = {**(await held_back(apple))[0], "notificationUUID": str(uuid.uuid4())}
    refused(await post(apple, FORGER.sign(forged)))
    await nothing_stored(apple)


@pytest.mark.parametrize("part", ["signedTransactionInfo", "signedRenewalInfo"])
async def test_forged_signed_data_inside_a_genuine_payload_is_refused(
    apple: Apple, simulator: SimulatorServer, part: str
) -> None:
    payload, _ = await held_back(apple)
    inner = FORGER.sign(claims(payload["data"][part]))
    forged = {**payload, "notificationUUID": str(uuid.uuid4())}
    forged["data"] = {**payload["data"], part: inner}
    refused(await post(apple, simulator.state.signer.sign(forged)))
    await nothing_stored(apple)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"signedPayload": ""}',
        b'{"signedPayload": 42}',
        b'{"signedPayload": "garbage"}',
        b'{"signedPayload": "a.b.c"}',
        b"[]",
    ],
)
async def test_a_malformed_body_is_refused(apple: Apple, body: bytes) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            apple.url(), content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "REQ0001"
    await nothing_stored(apple)


def _without(payload: JsonDict, key: str) -> JsonDict:
    return {k: v for k, v in payload.items() if k != key}


MANGLED: dict[str, Callable[[JsonDict], JsonDict]] = {
    "no data": lambda p: _without(p, "data"),
    "data not an object": lambda p: {**p, "data": "nothing"},
    "no notificationUUID": lambda p: _without(p, "notificationUUID"),
    "no signedDate": lambda p: _without(p, "signedDate"),
    "signedDate not a number": lambda p: {**p, "signedDate": "yesterday"},
    "no notificationType": lambda p: _without(p, "notificationType"),
    "renewal of another purchase": lambda p: p,
}


@pytest.mark.parametrize("case", list(MANGLED))
async def test_genuinely_signed_nonsense_is_refused(
    apple: Apple, simulator: SimulatorServer, case: str
) -> None:
    payload = {**(await held_back(apple))[0], "notificationUUID": str(uuid.uuid4())}
    if case == "renewal of another purchase":
        renewal = {**claims(payload["data"]["signedRenewalInfo"]), "originalTransactionId": "1"}
        payload["data"] = {
            **payload["data"],
            "signedRenewalInfo": simulator.state.signer.sign(renewal),
        }
    refused(await post(apple, simulator.state.signer.sign(MANGLED[case](payload))))
    await nothing_stored(apple)


async def test_a_notification_for_another_bundle_is_refused(apple: Apple, other_shop: Shop) -> None:
    await apple.notify_to(apple.url(), other_shop.bundle_id)  # the other app posts to this URL
    bought = await other_shop.purchase()
    await apple.act(bought["transactionId"], "renew", expect=400)
    await nothing_stored(apple)


async def test_an_unknown_or_inactive_publisher_is_refused(apple: Apple) -> None:
    _, signed = await held_back(apple)
    refused(await post(apple, signed, apple.url(999_999_999)), "publisherId")
    url = f"/admin/publishers/{apple.shop.publisher.id}/storekit2"
    assert (await apple.shop.client.delete(url, headers=ADMIN)).status_code == 204
    refused(await post(apple, signed), "publisherId")
    await nothing_stored(apple)
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(apple.url(0), json={"signedPayload": signed})
    assert answer.status_code == 400
    assert answer.json()["code"] == "REQ0003"


@pytest.mark.parametrize(
    ("integration", "environment", "accepted"),
    [
        ("Auto", "Sandbox", True),
        ("Auto", "Production", True),
        ("Production", "Production", True),
        ("Sandbox", "Sandbox", True),
        ("Production", "Sandbox", False),
        ("Sandbox", "Production", False),
    ],
)
async def test_the_environment_must_be_one_the_publisher_accepts(
    apple: Apple, integration: str, environment: str, accepted: bool
) -> None:
    shop = await open_shop(apple.shop.client, apple.shop.sim, apple.shop.context, integration)
    local = Apple(shop, apple.worker, apple.base_url)
    await local.notify_to(local.url())
    bought = await shop.purchase(environment=environment, notify=True)
    assert bought["notification"]["statusCode"] == (200 if accepted else 400)
    notes = await local.notifications()
    assert [n["environment"] for n in notes] == ([environment] if accepted else [])


async def test_the_list_is_newest_first_and_filtered(apple: Apple) -> None:
    bought, _ = await apple.subscribed()
    for enabled in (False, True, False):
        await apple.act(bought["transactionId"], "auto-renew", enabled=enabled)
    await apple.shop.sim.post(
        f"/sim/purchases/{bought['transactionId']}/notify", json={"notificationType": "TEST"}
    )
    listed = await apple.notifications()
    assert [n["notificationType"] for n in listed] == ["TEST"] + ["DID_CHANGE_RENEWAL_STATUS"] * 3
    assert [n["subtype"] for n in listed[1:]] == [
        "AUTO_RENEW_DISABLED",
        "AUTO_RENEW_ENABLED",
        "AUTO_RENEW_DISABLED",
    ]
    assert [n["status"] for n in listed] == ["stored", "pending", "pending", "pending"]
    first = listed[-1]
    assert first["originalTransactionId"] == bought["originalTransactionId"]
    assert first["signedDate"] <= listed[0]["signedDate"]
    assert set(first) == {
        # docs/api.md §6
        "notificationUUID",
        "notificationType",
        "subtype",
        "originalTransactionId",
        "source",
        "receivedAt",
        "appliedAt",
        "outcome",
        # and what the service adds
        "environment",
        "transactionId",
        "signedDate",
        "status",
        "subscriptionId",
    }
    assert {n["source"] for n in listed} == {"posted"}
    assert [n["appliedAt"] for n in listed[1:]] == [None] * 3
    assert len(await apple.notifications(limit=2)) == 2
    assert [n["status"] for n in await apple.notifications(status="stored")] == ["stored"]
    assert await apple.worker.drain() == 3
    assert {n["status"] for n in await apple.notifications(status="applied")} == {"applied"}


async def test_the_list_is_the_publishers_own(apple: Apple, other_shop: Shop) -> None:
    url = f"/admin/publishers/{apple.shop.publisher.id}/notifications"
    client = apple.shop.client
    assert (await client.get(url)).status_code == 401
    other = other_shop.publisher.headers
    assert (await client.get(url, headers=other)).json()["code"] == "AUTH0003"
    assert (await client.get(url, headers=apple.shop.publisher.headers)).status_code == 200
    for limit in (0, 101, "x"):
        answer = await client.get(url, params={"limit": limit}, headers=ADMIN)
        assert answer.status_code == 400
        assert answer.json()["code"] == "REQ0001"
    bad_status = await client.get(url, params={"status": "done"}, headers=ADMIN)
    assert bad_status.status_code == 400
    missing = await client.get("/admin/publishers/999999999/notifications", headers=ADMIN)
    assert (missing.status_code, missing.json()["code"]) == (404, "REQ0100")


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_online_checks_verify_off_the_event_loop(
    apple: Apple, settings: Settings, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With online checks on, Apple's verifier makes blocking HTTP calls: it runs in a thread.
    The simulator's chain names no OCSP responder, so the check fails and the payload is refused:
    verification is never skipped."""
    seen: list[bool] = []
    verify_all = apple_notifications._refusing_malformed

    def spy(verifier: Any, signed: str) -> VerifiedNotification:
        seen.append(_in_event_loop())
        return verify_all(verifier, signed)

    monkeypatch.setattr(apple_notifications, "_refusing_malformed", spy)
    _, signed = await held_back(apple)
    online = settings.model_copy(update={"apple_online_checks": True})
    server = BackgroundServer(create_app(online, clock=clock))
    await asyncio.to_thread(server.start)
    try:
        url = f"{server.base_url}/apple/notifications/{apple.shop.publisher.id}"
        refused(await post(apple, signed, url))
    finally:
        await asyncio.to_thread(server.stop)
    assert seen == [False]
    await nothing_stored(apple)


async def test_a_notification_signed_long_ago_or_ahead_is_counted_and_still_stored(
    apple: Apple, clock: MovableClock
) -> None:
    """Nothing Apple sends is older than 180 days when it arrives: one that is was kept and
    posted again (or a clock is wrong). Counted and logged; stored as any (the newer state wins)."""
    _, first = await held_back(apple)
    _, second = await held_back(apple)

    def counted() -> dict[str, float]:
        return {r: OUT_OF_DATE.labels(r)._value.get() for r in ("old", "future")}

    before = counted()
    clock.advance(181 * 86400)
    assert (await post(apple, first)).status_code == 200
    assert counted() == {"old": before["old"] + 1, "future": before["future"]}
    clock.advance(-181 * 86400 - 3600)  # this service's clock an hour behind Apple's
    assert (await post(apple, second)).status_code == 200
    assert counted() == {"old": before["old"] + 1, "future": before["future"] + 1}
    assert await apple.stored() == 2
