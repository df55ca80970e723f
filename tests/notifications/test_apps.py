"""One notification URL per publisher, several apps: each notification is verified by the verifier of
the app it names, and one naming no app of the publisher is refused."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt

from app.simulator.server import SimulatorServer
from tests.helpers.appstore import Apple, topics
from tests.helpers.shop import add_app


def _claims(signed: str) -> dict[str, Any]:
    return dict(jwt.decode(signed, options={"verify_signature": False}))


async def _post(apple: Apple, signed: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(apple.url(), json={"signedPayload": signed})


async def test_each_apps_notifications_are_verified_as_that_apps(apple: Apple) -> None:
    shop = apple.shop
    tv = await add_app(shop)
    await apple.notify_to(apple.url(), tv)
    for app in (shop.bundle_id, tv):
        bought = await shop.purchase(app=app)
        await shop.accepted(shop.customers[0], bought["transactionId"])
        assert await apple.worker.drain() == 1
        done = await apple.act(bought["transactionId"], "renew")  # 200: verified and stored
        assert await apple.worker.drain() == 1
        note = (await apple.notifications())[0]
        assert note["notificationUUID"] == done["notification"]["notificationUuid"]
        assert (note["status"], note["originalTransactionId"]) == (
            "applied",
            bought["originalTransactionId"],
        )
    assert topics(await apple.events()) == ["subscriptionRenewed", "subscriptionRenewed"]


async def test_a_notification_must_name_an_app_of_the_publisher(
    apple: Apple, simulator: SimulatorServer
) -> None:
    """Genuinely signed by Apple (the simulator's chain), but for no app of this publisher, or
    for no app at all while the publisher has two: refused, nothing stored."""
    shop = apple.shop
    await add_app(shop)
    await apple.notify_to(None)
    bought = await shop.purchase()
    done = await apple.act(bought["transactionId"], "renew", expect=None)
    await apple.notify_to(apple.url())
    payload = _claims(done["notification"]["signedPayload"])
    cases = {
        "bundleId com.stranger.tv is not an app of this publisher": "com.stranger.tv",
        "the notification names no bundleId, and this publisher has several apps": None,
    }
    for problem, bundle_id in cases.items():
        data = {k: v for k, v in payload["data"].items() if k != "bundleId"}
        if bundle_id is not None:
            data["bundleId"] = bundle_id
        forged = {**payload, "notificationUUID": str(uuid.uuid4()), "data": data}
        answer = await _post(apple, simulator.state.signer.sign(forged))
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "REQ0001"
        assert answer.json()["details"] == [{"field": "signedPayload", "problem": problem}]
    assert await apple.stored() == 0
