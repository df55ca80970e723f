"""Apple's paths, driven by Apple's own client over HTTP and checked by Apple's own verifier."""

from __future__ import annotations

import uuid

import httpx
import pytest
from appstoreserverlibrary.api_client import APIException, GetTransactionHistoryVersion
from appstoreserverlibrary.models.AutoRenewStatus import AutoRenewStatus
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.InAppOwnershipType import InAppOwnershipType
from appstoreserverlibrary.models.Status import Status
from appstoreserverlibrary.models.TransactionHistoryRequest import Order, TransactionHistoryRequest
from appstoreserverlibrary.models.TransactionReason import TransactionReason
from appstoreserverlibrary.models.Type import Type
from appstoreserverlibrary.signed_data_verifier import VerificationException

from app.simulator.certs import generate_chain
from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    SimApp,
    act,
    buy,
    register_app,
    verified_renewal,
    verified_transaction,
)

DAY_MS = 86_400_000
PRODUCT_TYPES = [
    ("auto-renewable", Type.AUTO_RENEWABLE_SUBSCRIPTION),
    ("non-consumable", Type.NON_CONSUMABLE),
    ("non-renewing", Type.NON_RENEWING_SUBSCRIPTION),
    ("consumable", Type.CONSUMABLE),
]


@pytest.mark.parametrize(("product_type", "apple_type"), PRODUCT_TYPES)
async def test_every_product_type_comes_signed_as_apple_would(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    product_type: str,
    apple_type: Type,
) -> None:
    token = str(uuid.uuid4())
    extra = {"expiresDate": 1_900_000_000_000} if product_type == "non-renewing" else {}
    bought = await buy(
        control, app, product_type, appAccountToken=token, price=4990, currency="EUR", **extra
    )
    answer = await apple(app).get_transaction_info(bought["transactionId"])
    decoded = verified_transaction(app.verifier(sim.root_der), answer.signedTransactionInfo)
    assert decoded.type == apple_type
    assert decoded.transactionId == decoded.originalTransactionId == bought["transactionId"]
    assert (decoded.bundleId, decoded.productId) == (app.bundle_id, bought["productId"])
    assert (decoded.appAccountToken, decoded.price, decoded.currency) == (token, 4990, "EUR")
    assert decoded.inAppOwnershipType == InAppOwnershipType.PURCHASED
    assert decoded.transactionReason == TransactionReason.PURCHASE
    assert (decoded.environment, decoded.storefront, decoded.quantity) == (
        Environment.SANDBOX,
        "USA",
        1,
    )
    assert decoded.purchaseDate == decoded.originalPurchaseDate == bought["purchaseDate"]
    assert decoded.signedDate is not None
    assert decoded.expiresDate == bought["expiresDate"]
    is_subscription = product_type == "auto-renewable"
    assert (decoded.webOrderLineItemId is not None) == is_subscription
    assert (decoded.subscriptionGroupIdentifier is not None) == is_subscription


async def test_a_subscription_lasts_thirty_days_by_default(
    control: httpx.AsyncClient, app: SimApp
) -> None:
    bought = await buy(control, app, purchaseDate=1_700_000_000_000, offerType=1)
    assert bought["expiresDate"] == 1_700_000_000_000 + 30 * DAY_MS
    assert bought["offerType"] == 1


async def test_production_purchases_verify_for_production(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, "non-consumable", environment="Production")
    client = apple(app, Environment.PRODUCTION)
    signed = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    verifier = app.verifier(sim.root_der, Environment.PRODUCTION)
    assert verified_transaction(verifier, signed).environment == Environment.PRODUCTION
    with pytest.raises(VerificationException):
        verified_transaction(app.verifier(sim.root_der), signed)


async def test_renewals_are_new_transactions_of_the_same_purchase(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    original = bought["transactionId"]
    renewed = await act(control, original, "renew", notify=False)
    again = await act(control, renewed["transactionId"], "renew", notify=False)
    ids = [t["transactionId"] for t in again["transactions"]]
    assert len(set(ids)) == 3
    assert ids[0] == original
    verifier, client = app.verifier(sim.root_der), apple(app)
    for index, transaction_id in enumerate(ids):
        signed = (await client.get_transaction_info(transaction_id)).signedTransactionInfo
        decoded = verified_transaction(verifier, signed)
        assert (decoded.transactionId, decoded.originalTransactionId) == (transaction_id, original)
        assert decoded.purchaseDate == bought["purchaseDate"] + index * 30 * DAY_MS
        assert decoded.transactionReason == (
            TransactionReason.PURCHASE if index == 0 else TransactionReason.RENEWAL
        )


async def test_status_has_the_latest_transaction_and_renewal_info(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, subscriptionGroupIdentifier="21000001")
    renewed = await act(control, bought["transactionId"], "renew", notify=False)
    answer = await apple(app).get_all_subscription_statuses(bought["transactionId"])
    assert (answer.environment, answer.bundleId, answer.appAppleId) == (
        Environment.SANDBOX,
        app.bundle_id,
        app.app_apple_id,
    )
    assert answer.data is not None and answer.data[0].subscriptionGroupIdentifier == "21000001"
    last = (answer.data[0].lastTransactions or [])[0]
    assert (last.status, last.originalTransactionId) == (Status.ACTIVE, bought["transactionId"])
    verifier = app.verifier(sim.root_der)
    transaction = verified_transaction(verifier, last.signedTransactionInfo)
    assert transaction.transactionId == renewed["transactionId"]
    renewal = verified_renewal(verifier, last.signedRenewalInfo)
    assert renewal.autoRenewStatus == AutoRenewStatus.ON
    assert renewal.originalTransactionId == bought["transactionId"]
    assert renewal.autoRenewProductId == renewal.productId == bought["productId"]
    assert renewal.renewalDate == renewed["expiresDate"]
    assert renewal.isInBillingRetryPeriod is False


async def test_status_filter_and_non_subscriptions(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client = apple(app)
    filtered = await client.get_all_subscription_statuses(bought["transactionId"], [Status.EXPIRED])
    assert filtered.data == []
    one_time = await buy(control, app, "non-consumable")
    assert (await client.get_all_subscription_statuses(one_time["transactionId"])).data == []


async def test_history_pages_by_twenty_in_both_orders(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    for _ in range(21):
        latest = await act(control, bought["transactionId"], "renew", notify=False)
    ids = [t["transactionId"] for t in latest["transactions"]]
    client, verifier = apple(app), app.verifier(sim.root_der)
    v2 = GetTransactionHistoryVersion.V2
    first = await client.get_transaction_history(ids[5], None, TransactionHistoryRequest(), v2)
    assert (first.hasMore, len(first.signedTransactions or []), first.bundleId) == (
        True,
        20,
        app.bundle_id,
    )
    rest = await client.get_transaction_history(
        ids[5], first.revision, TransactionHistoryRequest(), v2
    )
    assert rest.hasMore is False
    pages = (first.signedTransactions or []) + (rest.signedTransactions or [])
    seen = [verified_transaction(verifier, s).transactionId for s in pages]
    assert seen == ids
    newest = TransactionHistoryRequest(sort=Order.DESCENDING)
    descending = await client.get_transaction_history(ids[0], None, newest, v2)
    signed = (descending.signedTransactions or [])[0]
    assert verified_transaction(verifier, signed).transactionId == ids[-1]


async def test_history_v1_is_served_too(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, "consumable")
    history = await apple(app).get_transaction_history(
        bought["transactionId"], None, TransactionHistoryRequest()
    )
    assert len(history.signedTransactions or []) == 1


async def test_a_refund_is_in_the_next_signature(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    client = apple(app)
    before = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    cached = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    assert cached == before
    await act(control, bought["transactionId"], "refund", notify=False)
    after = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    decoded = verified_transaction(app.verifier(sim.root_der), after)
    assert decoded.revocationDate is not None and decoded.rawRevocationReason == 0
    statuses = await client.get_all_subscription_statuses(bought["transactionId"])
    assert statuses.data and (statuses.data[0].lastTransactions or [])[0].status == Status.REVOKED


async def test_another_apps_transactions_are_not_found(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    stranger = await register_app(control, None)
    with pytest.raises(APIException) as caught:
        await apple(stranger).get_transaction_info(bought["transactionId"])
    assert (caught.value.http_status_code, caught.value.raw_api_error) == (404, 4040010)


async def test_unknown_and_malformed_ids_answer_apples_errors(
    app: SimApp, apple: MakeClient
) -> None:
    client = apple(app)
    with pytest.raises(APIException) as unknown:
        await client.get_transaction_info("1999999999999999")
    assert (unknown.value.http_status_code, unknown.value.raw_api_error) == (404, 4040010)
    with pytest.raises(APIException) as malformed:
        await client.get_transaction_info("not-a-number")
    assert (malformed.value.http_status_code, malformed.value.raw_api_error) == (400, 4000006)


async def test_errors_are_exactly_application_json(
    sim: SimulatorServer, app: SimApp, apple: MakeClient
) -> None:
    token = apple(app)._generate_token()
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        response = await http.get(
            "/inApps/v1/transactions/1", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"errorCode": 4040010, "errorMessage": "Transaction id not found."}


@pytest.mark.parametrize(
    ("prefix", "visible"), [("/sandbox", "Sandbox"), ("/production", "Production")]
)
async def test_environment_prefixes_show_one_environment(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    prefix: str,
    visible: str,
) -> None:
    bought = {
        env: await buy(control, app, "consumable", environment=env)
        for env in ("Sandbox", "Production")
    }
    scoped, everything = apple(app, base_url=sim.base_url + prefix), apple(app)
    for env, purchase in bought.items():
        await everything.get_transaction_info(purchase["transactionId"])
        if env == visible:
            await scoped.get_transaction_info(purchase["transactionId"])
            continue
        with pytest.raises(APIException) as caught:
            await scoped.get_transaction_info(purchase["transactionId"])
        assert caught.value.raw_api_error == 4040010


async def test_a_verifier_trusting_another_root_rejects_everything(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    answer = await apple(app).get_all_subscription_statuses(bought["transactionId"])
    last = ((answer.data or [])[0].lastTransactions or [])[0]
    foreign = app.verifier(generate_chain("foreign").root_der)
    with pytest.raises(VerificationException):
        verified_transaction(foreign, last.signedTransactionInfo)
    with pytest.raises(VerificationException):
        verified_renewal(foreign, last.signedRenewalInfo)
