"""Apple's calls that tell the App Store something: Set App Account Token, Send Consumption
Information (v2, and the deprecated v1) and Finish Transaction.

Consumption information is kept on the transaction (see it under ``/sim/purchases``); Apple uses
it to decide a refund, which the simulator leaves to the control API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.simulator.calls import Scope, begin, find_transaction, json_object, no_content
from app.simulator.errors import ErrorCode, apple_error
from app.simulator.model import Environment, OwnershipType, Purchase
from app.simulator.validation import as_uuid, boolean, int_in, one_of

ACCEPTED = 202
DELIVERY_STATUSES = frozenset(
    {
        "DELIVERED",
        "UNDELIVERED_QUALITY_ISSUE",
        "UNDELIVERED_WRONG_ITEM",
        "UNDELIVERED_SERVER_OUTAGE",
        "UNDELIVERED_OTHER",
    }
)
REFUND_PREFERENCES = frozenset({"DECLINE", "GRANT_FULL", "GRANT_PRORATED"})
PERCENTAGE = range(0, 100_001)
# Send Consumption Information v1: each field, the values it takes and the error for others.
V1_FIELDS = (
    ("consumptionStatus", range(4), ErrorCode.INVALID_CONSUMPTION_STATUS),
    ("platform", range(3), ErrorCode.INVALID_PLATFORM),
    ("deliveryStatus", range(6), ErrorCode.INVALID_DELIVERY_STATUS),
    ("accountTenure", range(8), ErrorCode.INVALID_ACCOUNT_TENURE),
    ("playTime", range(8), ErrorCode.INVALID_PLAY_TIME),
    ("lifetimeDollarsRefunded", range(8), ErrorCode.INVALID_LIFETIME_DOLLARS_REFUNDED),
    ("lifetimeDollarsPurchased", range(8), ErrorCode.INVALID_LIFETIME_DOLLARS_PURCHASED),
    ("userStatus", range(5), ErrorCode.INVALID_USER_STATUS),
)


def _consented(body: dict[str, Any]) -> None:
    if body.get("customerConsented") is not True:
        raise apple_error(ErrorCode.INVALID_CUSTOMER_CONSENTED)
    boolean(body, "sampleContentProvided", ErrorCode.INVALID_SAMPLE_CONTENT_PROVIDED)


def check_consumption(body: dict[str, Any]) -> None:
    """A ConsumptionRequest (v2)."""
    _consented(body)
    one_of(body, "deliveryStatus", DELIVERY_STATUSES, ErrorCode.INVALID_DELIVERY_STATUS)
    int_in(body, "consumptionPercentage", PERCENTAGE, ErrorCode.GENERAL_BAD_REQUEST, False)
    one_of(body, "refundPreference", REFUND_PREFERENCES, ErrorCode.GENERAL_BAD_REQUEST, False)


def check_consumption_v1(body: dict[str, Any]) -> None:
    """A ConsumptionRequestV1: every field is required but the refund preference."""
    _consented(body)
    for key, allowed, code in V1_FIELDS:
        int_in(body, key, allowed, code)
    token = body.get("appAccountToken")
    if token != "" and as_uuid(token) is None:
        raise apple_error(ErrorCode.INVALID_APP_ACCOUNT_TOKEN)
    int_in(body, "refundPreference", range(4), ErrorCode.GENERAL_BAD_REQUEST, False)


def set_app_account_token(scope: Scope, original_id: str, body: dict[str, Any]) -> None:
    purchase, transaction = find_transaction(scope, original_id)
    if transaction is not purchase.original:
        raise apple_error(ErrorCode.TRANSACTION_ID_IS_NOT_ORIGINAL_TRANSACTION_ID)
    if purchase.ownership is OwnershipType.FAMILY_SHARED:
        raise apple_error(ErrorCode.FAMILY_TRANSACTION_NOT_SUPPORTED)
    token = as_uuid(body.get("appAccountToken"))
    if token is None:
        raise apple_error(ErrorCode.INVALID_APP_ACCOUNT_TOKEN_UUID)
    _set_token(purchase, token, scope.state.now())


def _set_token(purchase: Purchase, token: str, now: int) -> None:
    purchase.app_account_token = token
    for transaction in purchase.transactions:
        transaction.modified(now)
    purchase.renewal_changed(now)


async def _record_consumption(
    scope: Scope, transaction_id: str, body: dict[str, Any], version: int
) -> Response:
    _, transaction = find_transaction(scope, transaction_id)
    transaction.consumption = body | {"version": version, "receivedDate": scope.state.now()}
    return no_content(ACCEPTED)


def add_routes(router: APIRouter, environment: Environment | None) -> None:
    @router.put("/inApps/v1/transactions/{transaction_id}/appAccountToken")
    async def put_app_account_token(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "app_account_token", transaction_id)
        set_app_account_token(scope, transaction_id, await json_object(request))
        return no_content()

    @router.put("/inApps/v2/transactions/consumption/{transaction_id}")
    async def send_consumption_information(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "consumption", transaction_id)
        body = await json_object(request)
        check_consumption(body)
        return await _record_consumption(scope, transaction_id, body, 2)

    @router.put("/inApps/v1/transactions/consumption/{transaction_id}")
    async def send_consumption_data(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "consumption", transaction_id)
        body = await json_object(request)
        check_consumption_v1(body)
        return await _record_consumption(scope, transaction_id, body, 1)

    @router.post("/inApps/v1/transactions/{transaction_id}/finish")
    async def finish_transaction(transaction_id: str, request: Request) -> Response:
        scope = await begin(request, environment, "finish_transaction", transaction_id)
        _, transaction = find_transaction(scope, transaction_id)
        transaction.finished = True
        return no_content()
