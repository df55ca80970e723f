"""Apple's read calls about a customer's purchases: Get Transaction Info, Get All Subscription
Statuses, Get Transaction History (v1 and v2), Get Refund History, Look Up Order ID and Get App
Transaction Info."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.simulator.calls import Scope, begin, find_customer, find_transaction
from app.simulator.errors import ErrorCode, apple_error, json_response
from app.simulator.history import history_body, parse_query, refund_body
from app.simulator.model import Environment, Status
from app.simulator.orders import transaction_id_of
from app.simulator.payloads import (
    app_transaction_payload,
    signed_renewal_info,
    signed_transaction,
)
from app.simulator.state import Customer

STATUSES = frozenset(str(int(s)) for s in Status)
ORDER_VALID, ORDER_INVALID = 0, 1


def _statuses(request: Request) -> frozenset[int]:
    values = request.query_params.getlist("status")
    if any(v not in STATUSES for v in values):
        raise apple_error(ErrorCode.INVALID_STATUS)
    return frozenset(int(v) for v in values)


def status_body(scope: Scope, customer: Customer, wanted: frozenset[int]) -> dict[str, object]:
    """StatusResponse: the customer's subscriptions by group, each with its latest transaction."""
    signer, now = scope.state.signer, scope.state.now()
    groups: dict[str, list[dict[str, object]]] = {}
    for purchase in scope.state.purchases_of(customer):
        status = int(purchase.status(now))
        if not purchase.is_subscription or (wanted and status not in wanted):
            continue
        groups.setdefault(str(purchase.subscription_group_identifier), []).append(
            {
                "status": status,
                "originalTransactionId": purchase.original_transaction_id,
                "signedTransactionInfo": signed_transaction(signer, purchase, purchase.latest, now),
                "signedRenewalInfo": signed_renewal_info(signer, purchase, now),
            }
        )
    data = [
        {"subscriptionGroupIdentifier": g, "lastTransactions": last} for g, last in groups.items()
    ]
    return scope.envelope(customer) | {"data": data}


def order_body(scope: Scope, order_id: str) -> dict[str, object]:
    """OrderLookupResponse: status 0 with the order's transactions, or 1 for an unknown order."""
    transaction_id = transaction_id_of(order_id)
    found = scope.state.find(transaction_id) if transaction_id is not None else None
    if found is None or not scope.sees(found[0].customer):
        return {"status": ORDER_INVALID, "signedTransactions": []}
    purchase, transaction = found
    signed = signed_transaction(scope.state.signer, purchase, transaction, scope.state.now())
    return {"status": ORDER_VALID, "signedTransactions": [signed]}


def app_transaction_body(scope: Scope, customer: Customer) -> dict[str, object]:
    record = scope.state.app_transaction_of(customer)
    if record is None:
        raise apple_error(ErrorCode.APP_TRANSACTION_DOES_NOT_EXIST)
    payload = app_transaction_payload(scope.app, record, scope.state.now())
    return {"signedAppTransactionInfo": scope.state.signer.sign(payload)}


def add_routes(router: APIRouter, environment: Environment | None) -> None:
    """The read calls, for every environment (``None``) or only one."""

    @router.get("/inApps/v1/transactions/{transaction_id}")
    async def get_transaction_info(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "transaction_info", transaction_id)
        purchase, transaction = find_transaction(scope, transaction_id)
        now = scope.state.now()
        signed = signed_transaction(scope.state.signer, purchase, transaction, now)
        return json_response({"signedTransactionInfo": signed})

    @router.get("/inApps/v1/subscriptions/{transaction_id}")
    async def get_all_subscription_statuses(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "subscription_statuses", transaction_id)
        customer = find_customer(scope, transaction_id)
        return json_response(status_body(scope, customer, _statuses(request)))

    @router.get("/inApps/v2/history/{transaction_id}")
    @router.get("/inApps/v1/history/{transaction_id}")
    async def get_transaction_history(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "transaction_history", transaction_id)
        customer = find_customer(scope, transaction_id)
        query, revision = parse_query(request.query_params), request.query_params.get("revision")
        return json_response(history_body(scope, customer, query, revision))

    @router.get("/inApps/v2/refund/lookup/{transaction_id}")
    async def get_refund_history(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "refund_history", transaction_id)
        customer = find_customer(scope, transaction_id)
        revision = request.query_params.get("revision")
        return json_response(refund_body(scope, customer, revision))

    @router.get("/inApps/v1/lookup/{order_id}")
    async def look_up_order_id(order_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "order_lookup", transaction_id_of(order_id))
        return json_response(order_body(scope, order_id))

    @router.get("/inApps/v1/transactions/appTransactions/{transaction_id}")
    async def get_app_transaction_info(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "app_transaction_info", transaction_id)
        customer = find_customer(scope, transaction_id)
        return json_response(app_transaction_body(scope, customer))
