"""Apple's calls that change a purchase or tell Apple something: Set App Account Token, Send
Consumption Information (v2 and v1), Finish Transaction; Apple's client, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from appstoreserverlibrary.models.AccountTenure import AccountTenure
from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.ConsumptionRequestV1 import ConsumptionRequestV1
from appstoreserverlibrary.models.ConsumptionStatus import ConsumptionStatus
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.DeliveryStatusV1 import DeliveryStatusV1
from appstoreserverlibrary.models.LifetimeDollarsPurchased import LifetimeDollarsPurchased
from appstoreserverlibrary.models.LifetimeDollarsRefunded import LifetimeDollarsRefunded
from appstoreserverlibrary.models.Platform import Platform
from appstoreserverlibrary.models.PlayTime import PlayTime
from appstoreserverlibrary.models.RefundPreference import RefundPreference
from appstoreserverlibrary.models.UpdateAppAccountTokenRequest import UpdateAppAccountTokenRequest
from appstoreserverlibrary.models.UserStatus import UserStatus

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    SimApp,
    act,
    apple_error,
    bearer,
    buy,
    verified_renewal,
    verified_transaction,
)


async def test_an_app_account_token_set_later_is_in_every_signature(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    renewal = await act(control, bought["transactionId"], "renew", notify=False)
    token = str(uuid.uuid4())
    client = apple(app)
    request = UpdateAppAccountTokenRequest(appAccountToken=token.upper())
    assert await client.set_app_account_token(bought["transactionId"], request) is None
    verifier = app.verifier(sim.root_der)
    for transaction_id in (bought["transactionId"], renewal["transactionId"]):
        signed = (await client.get_transaction_info(transaction_id)).signedTransactionInfo
        assert verified_transaction(verifier, signed).appAccountToken == token
    statuses = await client.get_all_subscription_statuses(bought["transactionId"])
    last = ((statuses.data or [])[0].lastTransactions or [])[0]
    assert verified_renewal(verifier, last.signedRenewalInfo).appAccountToken == token


async def test_setting_an_app_account_token_refuses_what_apple_refuses(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    renewal = await act(control, bought["transactionId"], "renew", notify=False)
    shared = await buy(control, app, inAppOwnershipType="FAMILY_SHARED")
    client, good = apple(app), UpdateAppAccountTokenRequest(appAccountToken=str(uuid.uuid4()))
    bad = UpdateAppAccountTokenRequest(appAccountToken="not-a-uuid")
    cases = [
        (bought["transactionId"], bad, (400, 4000183)),
        (renewal["transactionId"], good, (400, 4000187)),
        (shared["transactionId"], good, (400, 4000185)),
        ("1999999999999999", good, (404, 4040010)),
        ("x1", good, (400, 4000006)),
    ]
    for transaction_id, request, expected in cases:
        assert await apple_error(client.set_app_account_token(transaction_id, request)) == expected


def _consumption(**changes: Any) -> ConsumptionRequest:
    fields: dict[str, Any] = {
        "customerConsented": True,
        "sampleContentProvided": False,
        "deliveryStatus": DeliveryStatus.DELIVERED,
        "consumptionPercentage": 25_000,
        "refundPreference": RefundPreference.DECLINE,
    }
    return ConsumptionRequest(**(fields | changes))


async def test_consumption_information_is_accepted_and_kept(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, "consumable")
    assert (
        await apple(app).send_consumption_information(bought["transactionId"], _consumption())
        is None
    )
    kept = (await control.get(f"/sim/purchases/{bought['transactionId']}")).json()
    consumption = kept["transactions"][0]["consumption"]
    assert consumption["deliveryStatus"] == "DELIVERED"
    assert (consumption["consumptionPercentage"], consumption["version"]) == (25_000, 2)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"customerConsented": False}, 4000035),
        ({"sampleContentProvided": "no"}, 4000041),
        ({"deliveryStatus": "LOST"}, 4000036),
        ({"consumptionPercentage": 100_001}, 4000000),
        ({"refundPreference": "MAYBE"}, 4000000),
    ],
)
async def test_consumption_information_is_checked(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    body: dict[str, object],
    code: int,
) -> None:
    bought = await buy(control, app, "consumable")
    valid = {
        "customerConsented": True,
        "sampleContentProvided": True,
        "deliveryStatus": "DELIVERED",
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.put(
            f"/inApps/v2/transactions/consumption/{bought['transactionId']}",
            json=valid | body,
            headers=bearer(apple(app)),
        )
    assert (answer.status_code, answer.json()["errorCode"]) == (400, code)


def _consumption_v1(**changes: Any) -> ConsumptionRequestV1:
    fields: dict[str, Any] = {
        "customerConsented": True,
        "consumptionStatus": ConsumptionStatus.PARTIALLY_CONSUMED,
        "platform": Platform.APPLE,
        "sampleContentProvided": True,
        "deliveryStatus": DeliveryStatusV1.DELIVERED_AND_WORKING_PROPERLY,
        "appAccountToken": "",
        "accountTenure": AccountTenure.THIRTY_DAYS_TO_NINETY_DAYS,
        "playTime": PlayTime.ONE_TO_SIX_HOURS,
        "lifetimeDollarsRefunded": LifetimeDollarsRefunded.ZERO_DOLLARS,
        "lifetimeDollarsPurchased": LifetimeDollarsPurchased.ZERO_DOLLARS,
        "userStatus": UserStatus.ACTIVE,
    }
    return ConsumptionRequestV1(**(fields | changes))


@pytest.mark.filterwarnings("ignore:send_consumption_data is deprecated:DeprecationWarning")
async def test_consumption_data_v1_is_checked_field_by_field(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    transaction_id = (await buy(control, app, "consumable"))["transactionId"]
    client = apple(app)
    assert await client.send_consumption_data(transaction_id, _consumption_v1()) is None
    missing_tenure = _consumption_v1(accountTenure=None)
    assert await apple_error(client.send_consumption_data(transaction_id, missing_tenure)) == (
        400,
        4000032,
    )
    bad_token = _consumption_v1(appAccountToken="nope")
    assert await apple_error(client.send_consumption_data(transaction_id, bad_token)) == (
        400,
        4000033,
    )


async def test_finishing_a_transaction(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, "consumable")
    client = apple(app)
    assert await client.finish_transaction(bought["transactionId"]) is None
    kept = (await control.get(f"/sim/purchases/{bought['transactionId']}")).json()
    assert kept["transactions"][0]["finished"] is True
    assert await apple_error(client.finish_transaction("1999999999999999")) == (404, 4040010)
