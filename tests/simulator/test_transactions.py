"""A customer's purchases through Apple's read calls: statuses by group, transaction history with
filters and revisions, refund history, order lookup, app transaction; Apple's client, over HTTP."""

from __future__ import annotations

import httpx
import pytest
from appstoreserverlibrary.api_client import GetTransactionHistoryVersion
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.InAppOwnershipType import InAppOwnershipType
from appstoreserverlibrary.models.OrderLookupStatus import OrderLookupStatus
from appstoreserverlibrary.models.RevocationType import RevocationType
from appstoreserverlibrary.models.Status import Status
from appstoreserverlibrary.models.TransactionHistoryRequest import (
    Order,
    ProductType,
    TransactionHistoryRequest,
)

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    JsonDict,
    MakeClient,
    SimApp,
    act,
    apple_error,
    bearer,
    buy,
    register_app,
    verified_transaction,
)

V2 = GetTransactionHistoryVersion.V2
DAY_MS = 86_400_000


async def _customer(control: httpx.AsyncClient, app: SimApp, account: str) -> list[JsonDict]:
    """Two subscriptions in two groups and a consumable, all bought by one account."""
    return [
        await buy(control, app, account=account, subscriptionGroupIdentifier="G1"),
        await buy(control, app, account=account, subscriptionGroupIdentifier="G2"),
        await buy(control, app, "consumable", account=account),
    ]


async def test_statuses_hold_every_subscription_of_the_customer_by_group(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    first, second, consumable = await _customer(control, app, "alice")
    await buy(control, app, account="bob")
    answer = await apple(app).get_all_subscription_statuses(consumable["transactionId"])
    groups = {g.subscriptionGroupIdentifier: g.lastTransactions or [] for g in answer.data or []}
    assert set(groups) == {"G1", "G2"}
    assert [t.originalTransactionId for t in groups["G1"]] == [first["transactionId"]]
    assert [t.originalTransactionId for t in groups["G2"]] == [second["transactionId"]]
    await act(control, second["transactionId"], "expire", notify=False)
    expired = await apple(app).get_all_subscription_statuses(
        first["transactionId"], [Status.EXPIRED]
    )
    assert [g.subscriptionGroupIdentifier for g in expired.data or []] == ["G2"]


async def test_an_unknown_status_filter_is_invalid_status(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.get(
            f"/inApps/v1/subscriptions/{bought['transactionId']}",
            params={"status": ["1", "9"]},
            headers=bearer(apple(app)),
        )
    assert (answer.status_code, answer.json()["errorCode"]) == (400, 4000031)


async def test_history_holds_every_transaction_of_the_customer(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await _customer(control, app, "carol")
    renewal = await act(control, bought[0]["transactionId"], "renew", notify=False)
    await buy(control, app, account="dave")
    answer = await apple(app).get_transaction_history(
        bought[2]["transactionId"], None, TransactionHistoryRequest(), V2
    )
    verifier = app.verifier(sim.root_der)
    seen = [
        verified_transaction(verifier, s).transactionId for s in answer.signedTransactions or []
    ]
    expected = [b["transactionId"] for b in bought] + [renewal["transactionId"]]
    assert seen == expected
    assert (answer.bundleId, answer.appAppleId, answer.environment) == (
        app.bundle_id,
        app.app_apple_id,
        Environment.SANDBOX,
    )


FILTERS: list[tuple[TransactionHistoryRequest, list[int]]] = [
    (TransactionHistoryRequest(productTypes=[ProductType.CONSUMABLE]), [2]),
    (TransactionHistoryRequest(productTypes=[ProductType.AUTO_RENEWABLE]), [0, 1, 3]),
    (TransactionHistoryRequest(subscriptionGroupIdentifiers=["G2"]), [1]),
    (TransactionHistoryRequest(revoked=True), [3]),
    (TransactionHistoryRequest(revoked=False), [0, 1, 2]),
    (TransactionHistoryRequest(inAppOwnershipType=InAppOwnershipType.FAMILY_SHARED), [2]),
    (TransactionHistoryRequest(startDate=1_700_000_000_000 + DAY_MS), [1, 2, 3]),
    (TransactionHistoryRequest(endDate=1_700_000_000_000 + DAY_MS), [0]),
    (TransactionHistoryRequest(sort=Order.DESCENDING, revoked=False), [2, 1, 0]),
]


@pytest.mark.parametrize(("request_", "expected"), FILTERS)
async def test_history_filters(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    request_: TransactionHistoryRequest,
    expected: list[int],
) -> None:
    start, account = 1_700_000_000_000, "erin"
    made = [
        await buy(
            control, app, account=account, purchaseDate=start, subscriptionGroupIdentifier="G1"
        ),
        await buy(
            control,
            app,
            account=account,
            purchaseDate=start + 2 * DAY_MS,
            subscriptionGroupIdentifier="G2",
            productId=f"{app.bundle_id}.other",
        ),
        await buy(
            control,
            app,
            "consumable",
            account=account,
            purchaseDate=start + 3 * DAY_MS,
            inAppOwnershipType="FAMILY_SHARED",
        ),
    ]
    renewed = await act(control, made[0]["transactionId"], "renew", notify=False)
    await act(control, made[0]["transactionId"], "refund", notify=False)
    ids = [m["transactionId"] for m in made] + [renewed["transactionId"]]
    client = apple(app)
    page = await client.get_transaction_history(ids[0], None, request_, V2)
    verifier = app.verifier(sim.root_der)
    seen = [verified_transaction(verifier, s).transactionId for s in page.signedTransactions or []]
    assert seen == [ids[i] for i in expected]


async def test_product_id_filter(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    one = await buy(control, app, account="fay")
    await buy(control, app, account="fay", productId=f"{app.bundle_id}.two")
    request = TransactionHistoryRequest(productIds=[one["productId"]])
    page = await apple(app).get_transaction_history(one["transactionId"], None, request, V2)
    verifier = app.verifier(sim.root_der)
    seen = [verified_transaction(verifier, s) for s in page.signedTransactions or []]
    assert [(t.transactionId, t.productId) for t in seen] == [
        (one["transactionId"], one["productId"])
    ]


async def test_a_kept_revision_later_yields_what_changed_since(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = [await buy(control, app, "non-consumable", account="gus") for _ in range(3)]
    client, request = apple(app), TransactionHistoryRequest()
    first = await client.get_transaction_history(bought[0]["transactionId"], None, request, V2)
    assert (len(first.signedTransactions or []), first.hasMore) == (3, False)
    nothing = await client.get_transaction_history(
        bought[0]["transactionId"], first.revision, request, V2
    )
    assert (nothing.signedTransactions, nothing.hasMore) == ([], False)
    await act(control, bought[1]["transactionId"], "refund", notify=False)
    changed = await client.get_transaction_history(
        bought[0]["transactionId"], first.revision, request, V2
    )
    verifier = app.verifier(sim.root_der)
    [signed] = changed.signedTransactions or []
    decoded = verified_transaction(verifier, signed)
    assert (decoded.transactionId, decoded.revocationType) == (
        bought[1]["transactionId"],
        RevocationType.REFUND_FULL,
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "SIDEWAYS"}, 4000021),
        ({"productType": "SUBSCRIPTION"}, 4000022),
        ({"productId": ""}, 4000023),
        ({"subscriptionGroupIdentifier": ""}, 4000024),
        ({"inAppOwnershipType": "BORROWED"}, 4000026),
        ({"revoked": "maybe"}, 4000030),
        ({"startDate": "yesterday"}, 4000015),
        ({"endDate": "-5"}, 4000016),
        ({"startDate": "2000", "endDate": "1000"}, 4000013),
        ({"startDate": "1000", "endDate": "1000"}, 4000013),
        ({"revision": "not a revision"}, 4000005),
    ],
)
async def test_history_refuses_what_apple_refuses(
    sim: SimulatorServer,
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    params: dict[str, str],
    code: int,
) -> None:
    bought = await buy(control, app)
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.get(
            f"/inApps/v2/history/{bought['transactionId']}",
            params=params,
            headers=bearer(apple(app)),
        )
    assert (answer.status_code, answer.json()["errorCode"]) == (400, code)


async def test_refund_history_pages_the_customers_refunds(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = [await buy(control, app, "consumable", account="hal") for _ in range(22)]
    for purchase in bought[:21]:
        await act(control, purchase["transactionId"], "refund", notify=False)
    await act(control, bought[21]["transactionId"], "revoke", notify=False)
    client = apple(app)
    first = await client.get_refund_history(bought[21]["transactionId"], None)
    assert (len(first.signedTransactions or []), first.hasMore) == (20, True)
    rest = await client.get_refund_history(bought[21]["transactionId"], first.revision)
    assert (len(rest.signedTransactions or []), rest.hasMore) == (1, False)
    verifier = app.verifier(sim.root_der)
    pages = (first.signedTransactions or []) + (rest.signedTransactions or [])
    refunded = [verified_transaction(verifier, s) for s in pages]
    assert [t.transactionId for t in refunded] == [b["transactionId"] for b in bought[:21]]
    assert {t.revocationType for t in refunded} == {RevocationType.REFUND_FULL}
    assert await apple_error(client.get_refund_history(bought[0]["transactionId"], "garbled")) == (
        400,
        4000005,
    )


async def test_an_order_id_finds_its_transaction(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    renewal = (await act(control, bought["transactionId"], "renew", notify=False))["transactions"][
        1
    ]
    client = apple(app)
    found = await client.look_up_order_id(renewal["orderId"])
    assert found.status == OrderLookupStatus.VALID
    [signed] = found.signedTransactions or []
    assert (
        verified_transaction(app.verifier(sim.root_der), signed).transactionId
        == renewal["transactionId"]
    )
    stranger = await register_app(control, None)
    for order_id, caller in (("NOSUCHORDER", app), (renewal["orderId"], stranger)):
        missing = await apple(caller).look_up_order_id(order_id)
        assert (missing.status, missing.signedTransactions) == (OrderLookupStatus.INVALID, [])


async def test_app_transaction_is_the_customers_download(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    first = await buy(control, app, account="ivy", purchaseDate=1_700_000_000_000)
    second = await buy(control, app, "consumable", account="ivy")
    other = await buy(control, app, account="jim")
    client, verifier = apple(app), app.verifier(sim.root_der)
    answer = await client.get_app_transaction_info(second["transactionId"])
    decoded = verifier.verify_and_decode_app_transaction(str(answer.signedAppTransactionInfo))
    assert decoded.appTransactionId == first["appTransactionId"] == second["appTransactionId"]
    assert decoded.appTransactionId != other["appTransactionId"]
    assert (decoded.bundleId, decoded.receiptType, decoded.originalPurchaseDate) == (
        app.bundle_id,
        Environment.SANDBOX,
        1_700_000_000_000,
    )
    signed = (await client.get_transaction_info(first["transactionId"])).signedTransactionInfo
    assert verified_transaction(verifier, signed).appTransactionId == decoded.appTransactionId
    by_download = await client.get_all_subscription_statuses(str(decoded.appTransactionId))
    assert len(by_download.data or []) == 1
    assert await apple_error(client.get_transaction_info(str(decoded.appTransactionId))) == (
        400,
        4000048,
    )


async def test_production_app_transactions_verify_for_production(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app, "non-consumable", environment="Production")
    answer = await apple(app, Environment.PRODUCTION).get_app_transaction_info(
        bought["transactionId"]
    )
    verifier = app.verifier(sim.root_der, Environment.PRODUCTION)
    decoded = verifier.verify_and_decode_app_transaction(str(answer.signedAppTransactionInfo))
    assert (decoded.receiptType, decoded.appAppleId) == (Environment.PRODUCTION, app.app_apple_id)


@pytest.mark.parametrize(
    "call", ["get_refund_history", "get_app_transaction_info", "look_up_order_id"]
)
async def test_unknown_ids_answer_apples_errors(app: SimApp, apple: MakeClient, call: str) -> None:
    client = apple(app)
    if call == "look_up_order_id":
        assert (await client.look_up_order_id("BAD-ORDER")).status == OrderLookupStatus.INVALID
        return
    method = getattr(client, call)
    args = ("1999999999999999", None) if call == "get_refund_history" else ("1999999999999999",)
    assert await apple_error(method(*args)) == (404, 4040010)
    bad = ("12ab", None) if call == "get_refund_history" else ("12ab",)
    assert await apple_error(method(*bad)) == (400, 4000006)
