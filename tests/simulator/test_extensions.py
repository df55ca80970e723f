"""Extending renewal dates, one subscription or all of a product's, through Apple's client."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.ExtendReasonCode import ExtendReasonCode
from appstoreserverlibrary.models.ExtendRenewalDateRequest import ExtendRenewalDateRequest
from appstoreserverlibrary.models.MassExtendRenewalDateRequest import (
    MassExtendRenewalDateRequest,
)
from appstoreserverlibrary.models.MassExtendRenewalDateStatusResponse import (
    MassExtendRenewalDateStatusResponse,
)
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    SimApp,
    act,
    apple_error,
    bearer,
    buy,
    eventually,
    verified_renewal,
    verified_transaction,
)

DAY_MS = 86_400_000


def _request(days: int = 10, request_id: str | None = None) -> ExtendRenewalDateRequest:
    return ExtendRenewalDateRequest(
        extendByDays=days,
        extendReasonCode=ExtendReasonCode.SERVICE_ISSUE_OR_OUTAGE,
        requestIdentifier=request_id or str(uuid.uuid4()),
    )


async def _notifications(
    sim: SimulatorServer, app: SimApp, client: AsyncAppStoreServerAPIClient
) -> list[tuple[str | None, str | None, Any]]:
    """(type, subtype, decoded payload) of every notification in the app's history."""
    now = int(time.time() * 1000)
    request = NotificationHistoryRequest(startDate=now - 600_000, endDate=now + 600_000)
    page = await client.get_notification_history(None, request)
    verifier = app.verifier(sim.root_der)
    decoded = [
        verifier.verify_and_decode_notification(str(i.signedPayload))
        for i in page.notificationHistory or []
    ]
    return [(d.rawNotificationType, d.rawSubtype, d) for d in decoded]


async def test_extending_one_subscription_moves_its_renewal_date(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client = apple(app)
    answer = await client.extend_subscription_renewal_date(bought["transactionId"], _request(10))
    assert (answer.success, answer.originalTransactionId) == (True, bought["transactionId"])
    assert answer.effectiveDate == bought["expiresDate"] + 10 * DAY_MS
    verifier = app.verifier(sim.root_der)
    signed = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    transaction = verified_transaction(verifier, signed)
    assert transaction.expiresDate == answer.effectiveDate
    assert transaction.webOrderLineItemId == answer.webOrderLineItemId
    statuses = await client.get_all_subscription_statuses(bought["transactionId"])
    last = ((statuses.data or [])[0].lastTransactions or [])[0]
    assert verified_renewal(verifier, last.signedRenewalInfo).renewalDate == answer.effectiveDate

    async def extended() -> list[Any] | None:
        found = [n for n in await _notifications(sim, app, client) if n[0] == "RENEWAL_EXTENDED"]
        return found or None

    [(_, _, notification)] = await eventually(extended)
    renewed = verified_transaction(verifier, notification.data.signedTransactionInfo)
    assert renewed.expiresDate == answer.effectiveDate


async def test_the_same_request_is_answered_the_same_without_extending_again(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client, request = apple(app), _request(5)
    first = await client.extend_subscription_renewal_date(bought["transactionId"], request)
    again = await client.extend_subscription_renewal_date(bought["transactionId"], request)
    assert again == first
    state = (await control.get(f"/sim/purchases/{bought['transactionId']}")).json()
    assert state["expiresDate"] == bought["expiresDate"] + 5 * DAY_MS


async def test_twice_a_year_at_most(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client = apple(app)
    for _ in range(2):
        await client.extend_subscription_renewal_date(bought["transactionId"], _request(1))
    third = client.extend_subscription_renewal_date(bought["transactionId"], _request(1))
    assert await apple_error(third) == (403, 4030005)


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ({"action": "expire"}, 4030004),
        ({"action": "billing-retry"}, 4030004),
        ({"action": "grace-period"}, 4030004),
        ({"action": "refund"}, 4030004),
        ({"type": "non-renewing", "expiresDate": 1_900_000_000_000}, 4030004),
        ({"inAppOwnershipType": "FAMILY_SHARED"}, 4030007),
    ],
)
async def test_ineligible_subscriptions_are_refused(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient, setup: dict[str, Any], code: int
) -> None:
    action = setup.pop("action", None)
    bought = await buy(control, app, setup.pop("type", "auto-renewable"), **setup)
    if action:
        await act(control, bought["transactionId"], action, notify=False)
    call = apple(app).extend_subscription_renewal_date(bought["transactionId"], _request())
    assert await apple_error(call) == (403, code)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"extendByDays": 0}, 4000009),
        ({"extendByDays": 91}, 4000009),
        ({"extendByDays": "7"}, 4000009),
        ({"extendReasonCode": 4}, 4000010),
        ({"requestIdentifier": ""}, 4000011),
        ({"requestIdentifier": "x" * 129}, 4000011),
    ],
)
async def test_extension_requests_are_checked(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    changes: dict[str, Any],
    code: int,
) -> None:
    bought = await buy(control, app)
    body = {"extendByDays": 1, "extendReasonCode": 0, "requestIdentifier": "r-1"} | changes
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.put(
            f"/inApps/v1/subscriptions/extend/{bought['transactionId']}",
            json=body,
            headers=bearer(apple(app)),
        )
    assert (answer.status_code, answer.json()["errorCode"]) == (400, code)


async def test_only_a_known_original_transaction_id_is_extended(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    renewal = await act(control, bought["transactionId"], "renew", notify=False)
    client = apple(app)
    for transaction_id, expected in [
        ("abc", (400, 4000008)),
        (renewal["transactionId"], (400, 4000008)),
        ("1999999999999999", (404, 4040005)),
    ]:
        call = client.extend_subscription_renewal_date(transaction_id, _request())
        assert await apple_error(call) == expected


def _mass(product_id: str, **changes: Any) -> MassExtendRenewalDateRequest:
    fields: dict[str, Any] = {
        "extendByDays": 3,
        "extendReasonCode": ExtendReasonCode.CUSTOMER_SATISFACTION,
        "requestIdentifier": str(uuid.uuid4()),
        "productId": product_id,
    }
    return MassExtendRenewalDateRequest(**(fields | changes))


async def _finished(
    client: AsyncAppStoreServerAPIClient, request_id: str, product_id: str
) -> MassExtendRenewalDateStatusResponse:
    async def probe() -> MassExtendRenewalDateStatusResponse | None:
        status = await client.get_status_of_subscription_renewal_date_extensions(
            request_id, product_id
        )
        return status if status.complete else None

    return await eventually(probe)


async def test_a_mass_extension_extends_every_eligible_active_subscriber(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    product = f"{app.bundle_id}.mass"
    eligible = [await buy(control, app, productId=product) for _ in range(2)]
    maxed, expired = (
        await buy(control, app, productId=product),
        await buy(control, app, productId=product),
    )
    other = await buy(control, app)
    client = apple(app)
    for _ in range(2):
        await client.extend_subscription_renewal_date(maxed["transactionId"], _request(1))
    await act(control, expired["transactionId"], "expire", notify=False)
    request = _mass(product)
    answer = await client.extend_renewal_date_for_all_active_subscribers(request)
    assert answer.requestIdentifier == request.requestIdentifier
    status = await _finished(client, str(request.requestIdentifier), product)
    assert (status.succeededCount, status.failedCount) == (2, 1)
    assert status.completeDate is not None
    for purchase, days in [(eligible[0], 3), (eligible[1], 3), (other, 0)]:
        now = (await control.get(f"/sim/purchases/{purchase['transactionId']}")).json()
        assert now["expiresDate"] == purchase["expiresDate"] + days * DAY_MS
    sent = await _notifications(sim, app, client)
    kinds = [(kind, subtype) for kind, subtype, _ in sent if kind == "RENEWAL_EXTENSION"]
    assert kinds == [("RENEWAL_EXTENSION", "FAILURE"), ("RENEWAL_EXTENSION", "SUMMARY")]
    summary = sent[-1][2].summary
    assert (summary.requestIdentifier, summary.productId, summary.bundleId) == (
        request.requestIdentifier,
        product,
        app.bundle_id,
    )
    assert (summary.succeededCount, summary.failedCount) == (2, 1)
    assert sum(1 for kind, _, _ in sent if kind == "RENEWAL_EXTENDED") == 2 + 2


async def test_a_mass_extension_elsewhere_extends_no_one(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client = apple(app)
    request = _mass(bought["productId"], storefrontCountryCodes=["CAN", "MEX"])
    await client.extend_renewal_date_for_all_active_subscribers(request)
    status = await _finished(client, str(request.requestIdentifier), bought["productId"])
    assert (status.succeededCount, status.failedCount) == (0, 0)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"requestIdentifier": "not-a-uuid"}, 4000011),
        ({"productId": ""}, 4000023),
        ({"storefrontCountryCodes": []}, 4000027),
        ({"storefrontCountryCodes": ["usa"]}, 4000028),
        ({"extendByDays": 100}, 4000009),
    ],
)
async def test_mass_extension_requests_are_checked(
    app: SimApp, apple: MakeClient, changes: dict[str, Any], code: int
) -> None:
    call = apple(app).extend_renewal_date_for_all_active_subscribers(_mass("p", **changes))
    assert await apple_error(call) == (400, code)


async def test_mass_extension_status_errors(app: SimApp, apple: MakeClient) -> None:
    client = apple(app)
    request = _mass("com.example.product")
    await client.extend_renewal_date_for_all_active_subscribers(request)
    request_id = str(request.requestIdentifier)
    await _finished(client, request_id, "com.example.product")
    status = client.get_status_of_subscription_renewal_date_extensions
    assert await apple_error(status("nope", "com.example.product")) == (400, 4000011)
    assert await apple_error(status(str(uuid.uuid4()), "com.example.product")) == (404, 4040009)
    assert await apple_error(status(request_id, "com.example.other")) == (404, 4040009)
