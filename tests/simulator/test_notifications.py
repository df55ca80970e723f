"""App Store Server Notifications V2: what each action posts, verified by Apple's verifier."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from appstoreserverlibrary.models.AutoRenewStatus import AutoRenewStatus
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import ResponseBodyV2DecodedPayload
from appstoreserverlibrary.signed_data_verifier import VerificationException

from app.simulator import SimulatorState
from app.simulator.certs import generate_chain
from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    JsonDict,
    Receiver,
    SimApp,
    act,
    buy,
    register_app,
    verified_renewal,
    verified_transaction,
)

DAY_MS = 86_400_000
Step = tuple[str, dict[str, Any]]


def _decode(sim: SimulatorServer, app: SimApp, record: JsonDict) -> ResponseBodyV2DecodedPayload:
    verifier = app.verifier(sim.root_der)
    decoded = verifier.verify_and_decode_notification(record["signedPayload"])
    assert decoded.notificationUUID == record["notificationUuid"]
    assert (decoded.version, decoded.rawNotificationType) == ("2.0", record["notificationType"])
    assert decoded.data is not None and decoded.data.bundleId == app.bundle_id
    assert (decoded.data.appAppleId, decoded.data.environment) == (
        app.app_apple_id,
        Environment.SANDBOX,
    )
    return decoded


async def test_a_new_subscription_posts_subscribed_initial_buy(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, receiver: Receiver
) -> None:
    bought = await buy(control, app, notify=True)
    record = bought["notification"]
    receiver.wait_for(record["signedPayload"])
    assert (record["statusCode"], record["url"]) == (200, receiver.url)
    decoded = _decode(sim, app, record)
    assert (decoded.rawNotificationType, decoded.rawSubtype) == ("SUBSCRIBED", "INITIAL_BUY")
    assert decoded.data is not None and decoded.data.rawStatus == 1
    verifier = app.verifier(sim.root_der)
    transaction = verified_transaction(verifier, decoded.data.signedTransactionInfo)
    assert transaction.transactionId == bought["transactionId"]
    renewal = verified_renewal(verifier, decoded.data.signedRenewalInfo)
    assert renewal.autoRenewStatus == AutoRenewStatus.ON


@pytest.mark.parametrize("product_type", ["non-consumable", "consumable", "non-renewing"])
async def test_one_time_purchases_post_one_time_charge(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, product_type: str
) -> None:
    record = (await buy(control, app, product_type, notify=True))["notification"]
    decoded = _decode(sim, app, record)
    assert (decoded.rawNotificationType, decoded.rawSubtype) == ("ONE_TIME_CHARGE", None)
    assert decoded.data is not None
    assert decoded.data.signedRenewalInfo is None and decoded.data.rawStatus is None


LIFECYCLE: list[tuple[list[Step], Step, str, str | None, int]] = [
    ([], ("renew", {}), "DID_RENEW", None, 1),
    ([], ("expire", {}), "EXPIRED", "BILLING_RETRY", 2),
    ([("auto-renew", {"enabled": False})], ("expire", {}), "EXPIRED", "VOLUNTARY", 2),
    ([], ("expire", {"subtype": "PRICE_INCREASE"}), "EXPIRED", "PRICE_INCREASE", 2),
    ([], ("expire", {"subtype": "PRODUCT_NOT_FOR_SALE"}), "EXPIRED", "PRODUCT_NOT_FOR_SALE", 2),
    ([("expire", {})], ("renew", {}), "SUBSCRIBED", "RESUBSCRIBE", 1),
    ([], ("refund", {}), "REFUND", None, 5),
    ([], ("revoke", {}), "REVOKE", None, 5),
    ([("refund", {})], ("refund-reversed", {}), "REFUND_REVERSED", None, 1),
    ([], ("billing-retry", {}), "DID_FAIL_TO_RENEW", None, 3),
    ([], ("grace-period", {}), "DID_FAIL_TO_RENEW", "GRACE_PERIOD", 4),
    ([("grace-period", {})], ("grace-period-expired", {}), "GRACE_PERIOD_EXPIRED", None, 3),
    ([("billing-retry", {})], ("recover", {}), "DID_RENEW", "BILLING_RECOVERY", 1),
    ([("grace-period", {})], ("recover", {}), "DID_RENEW", "BILLING_RECOVERY", 1),
    ([("billing-retry", {})], ("renew", {}), "DID_RENEW", "BILLING_RECOVERY", 1),
    ([], ("auto-renew", {"enabled": False}), "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", 1),
    ([], ("auto-renew", {"enabled": True}), "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", 1),
]


@pytest.mark.parametrize(
    ("before", "step", "kind", "subtype", "status"),
    LIFECYCLE,
    ids=[f"{'+'.join(b[0] for b in case[0])}>{case[1][0]}" for case in LIFECYCLE],
)
async def test_each_action_posts_apples_notification(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    receiver: Receiver,
    before: list[Step],
    step: Step,
    kind: str,
    subtype: str | None,
    status: int,
) -> None:
    original = (await buy(control, app))["transactionId"]
    for action, body in before:
        await act(control, original, action, notify=False, **body)
    state = await act(control, original, step[0], **step[1])
    record = state["notification"]
    receiver.wait_for(record["signedPayload"])
    decoded = _decode(sim, app, record)
    assert (decoded.rawNotificationType, decoded.rawSubtype) == (kind, subtype)
    assert decoded.data is not None and decoded.data.rawStatus == status == state["status"]
    verifier = app.verifier(sim.root_der)
    transaction = verified_transaction(verifier, decoded.data.signedTransactionInfo)
    renewal = verified_renewal(verifier, decoded.data.signedRenewalInfo)
    assert transaction.transactionId == state["transactionId"]
    assert transaction.originalTransactionId == renewal.originalTransactionId == original
    assert (transaction.revocationDate is not None) == (status == 5)
    assert renewal.isInBillingRetryPeriod == (status in (3, 4))
    assert renewal.rawAutoRenewStatus == (1 if state["autoRenew"] else 0)


async def test_failing_renewals_end_the_period_and_say_why(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp
) -> None:
    original = (await buy(control, app))["transactionId"]
    state = await act(control, original, "grace-period", durationSeconds=86_400)
    decoded = _decode(sim, app, state["notification"])
    assert decoded.data is not None and decoded.signedDate is not None
    renewal = verified_renewal(app.verifier(sim.root_der), decoded.data.signedRenewalInfo)
    assert renewal.gracePeriodExpiresDate == state["gracePeriodExpiresDate"]
    assert renewal.gracePeriodExpiresDate == state["expiresDate"] + DAY_MS
    assert renewal.rawExpirationIntent == 2
    expired = await act(control, original, "expire", subtype="VOLUNTARY")
    assert expired["status"] == 2 and expired["autoRenew"] is False


async def test_any_notification_about_the_current_state(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp
) -> None:
    original = (await buy(control, app))["transactionId"]
    body = {"notificationType": "PRICE_INCREASE", "subtype": "PENDING"}
    response = await control.post(f"/sim/purchases/{original}/notify", json=body)
    decoded = _decode(sim, app, response.json()["notification"])
    assert (decoded.rawNotificationType, decoded.rawSubtype) == ("PRICE_INCREASE", "PENDING")


async def test_resend_posts_the_very_same_payload(
    control: httpx.AsyncClient, app: SimApp, receiver: Receiver
) -> None:
    record = (await buy(control, app, notify=True))["notification"]
    uuid = record["notificationUuid"]
    resent = (await control.post(f"/sim/notifications/{uuid}/resend")).json()
    receiver.wait_for(record["signedPayload"], times=2)
    assert resent["signedPayload"] == record["signedPayload"]
    assert [a["statusCode"] for a in resent["attempts"]] == [200, 200]
    assert (await control.post("/sim/notifications/nope/resend")).status_code == 404


async def test_outcomes_are_recorded_and_listed(
    control: httpx.AsyncClient, receiver: Receiver
) -> None:
    app = await register_app(control, None)
    original = (await buy(control, app))["transactionId"]
    unsent = (await act(control, original, "renew"))["notification"]
    assert (unsent["statusCode"], unsent["error"]) == (None, "no notification URL configured")
    url = {"url": receiver.url}
    assert (await control.put(f"/sim/apps/{app.bundle_id}/notification-url", json=url)).is_success
    receiver.status_code = 503
    refused = (await act(control, original, "renew"))["notification"]
    assert refused["statusCode"] == 503
    listed = (await control.get("/sim/notifications", params={"bundleId": app.bundle_id})).json()
    assert [n["notificationUuid"] for n in listed] == [
        unsent["notificationUuid"],
        refused["notificationUuid"],
    ]


async def test_an_unreachable_receiver_is_an_error_not_a_failure(
    control: httpx.AsyncClient,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    app = await register_app(control, f"http://127.0.0.1:{port}/nobody")
    record = (await buy(control, app, notify=True))["notification"]
    assert record["statusCode"] is None and "ConnectError" in record["error"]


async def test_notify_false_sends_nothing(control: httpx.AsyncClient, app: SimApp) -> None:
    original = (await buy(control, app))["transactionId"]
    assert (await act(control, original, "renew", notify=False))["notification"] is None


async def test_a_verifier_trusting_another_root_rejects_notifications(
    control: httpx.AsyncClient, app: SimApp
) -> None:
    record = (await buy(control, app, notify=True))["notification"]
    foreign = app.verifier(generate_chain("foreign").root_der)
    with pytest.raises(VerificationException):
        foreign.verify_and_decode_notification(record["signedPayload"])


async def test_the_default_url_serves_apps_without_one(receiver: Receiver) -> None:
    state = SimulatorState(default_notification_url=receiver.url)
    with SimulatorServer(state) as other:
        async with httpx.AsyncClient(base_url=other.base_url) as control:
            app = await register_app(control, None)
            record = (await buy(control, app, "consumable", notify=True))["notification"]
    assert (record["url"], record["statusCode"]) == (receiver.url, 200)
    receiver.wait_for(record["signedPayload"])
