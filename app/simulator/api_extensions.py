"""Apple's renewal-date extension calls: Extend a Subscription Renewal Date, Extend Subscription
Renewal Dates for All Active Subscribers and Get Status of Subscription Renewal Date Extensions.

One extension is answered at once; asked again with the same ``requestIdentifier`` for the same
subscription, it answers the same without extending again. A mass extension runs after the call
has answered, as Apple's does; its status says ``complete`` when it is done.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.simulator.api_notifications import notifier_of
from app.simulator.calls import Scope, begin, is_id, json_object
from app.simulator.delivery import Notifier
from app.simulator.errors import ErrorCode, apple_error, json_response
from app.simulator.extensions import MAX_DAYS, candidates, extend, refusal
from app.simulator.model import Environment, Extension, MassExtension, Notice, Purchase
from app.simulator.notifications import deliver, purchase_notification, summary_notification
from app.simulator.state import SimulatorState
from app.simulator.validation import as_uuid, int_in, text

REQUEST_IDENTIFIER_LENGTH = 128
EXTENDED = Notice("RENEWAL_EXTENDED")
FAILED = Notice("RENEWAL_EXTENSION", "FAILURE")


def _days_and_reason(body: dict[str, Any]) -> tuple[int, int]:
    days = int_in(body, "extendByDays", range(1, MAX_DAYS + 1), ErrorCode.INVALID_EXTEND_BY_DAYS)
    reason = int_in(body, "extendReasonCode", range(4), ErrorCode.INVALID_EXTEND_REASON_CODE)
    return int(days or 0), int(reason or 0)


def _subscription(scope: Scope, original_id: str) -> Purchase:
    if not is_id(original_id):
        raise apple_error(ErrorCode.INVALID_ORIGINAL_TRANSACTION_ID)
    found = scope.state.find(original_id)
    if found is None or not scope.sees(found[0].customer):
        raise apple_error(ErrorCode.ORIGINAL_TRANSACTION_ID_NOT_FOUND)
    if found[1] is not found[0].original:
        raise apple_error(ErrorCode.INVALID_ORIGINAL_TRANSACTION_ID)
    return found[0]


def _extension_body(extension: Extension) -> dict[str, object]:
    return {
        "originalTransactionId": extension.original_transaction_id,
        "webOrderLineItemId": extension.web_order_line_item_id,
        "success": True,
        "effectiveDate": extension.effective_date,
    }


async def _notify(
    state: SimulatorState, notifier: Notifier, purchase: Purchase, notice: Notice
) -> None:
    await deliver(state, notifier, purchase_notification(state, purchase, notice))


async def _notify_and_keep(state: SimulatorState, notifier: Notifier, purchase: Purchase) -> None:
    await _notify(state, notifier, purchase, EXTENDED)
    state.persist()


def extend_one(
    scope: Scope, notifier: Notifier, original_id: str, body: dict[str, Any]
) -> dict[str, object]:
    days, _ = _days_and_reason(body)
    request_id = text(
        body, "requestIdentifier", REQUEST_IDENTIFIER_LENGTH, ErrorCode.INVALID_REQUEST_IDENTIFIER
    )
    purchase, state = _subscription(scope, original_id), scope.state
    key = (scope.app.bundle_id, purchase.original_transaction_id, request_id)
    if key in state.extensions:
        return _extension_body(state.extensions[key])
    refused = refusal(purchase, state.now())
    if refused is not None:
        raise apple_error(refused)
    expires = extend(purchase, days, state.now())
    state.extensions[key] = Extension(*key, purchase.latest.web_order_line_item_id, expires)
    notifier.spawn(_notify_and_keep(state, notifier, purchase))
    return _extension_body(state.extensions[key])


def _storefronts(body: dict[str, Any]) -> list[str] | None:
    codes = body.get("storefrontCountryCodes")
    if codes is None:
        return None
    if not isinstance(codes, list) or not codes:
        raise apple_error(ErrorCode.INVALID_EMPTY_STOREFRONT_COUNTRY_CODE_LIST)
    if any(
        not isinstance(c, str) or len(c) != 3 or not (c.isascii() and c.isupper()) for c in codes
    ):
        raise apple_error(ErrorCode.INVALID_STOREFRONT_COUNTRY_CODE)
    return list(codes)


def _mass_request(scope: Scope, body: dict[str, Any]) -> MassExtension:
    days, reason = _days_and_reason(body)
    request_id = as_uuid(body.get("requestIdentifier"))
    if request_id is None:
        raise apple_error(ErrorCode.INVALID_REQUEST_IDENTIFIER)
    product_id = body.get("productId")
    if not isinstance(product_id, str) or not product_id:
        raise apple_error(ErrorCode.INVALID_PRODUCT_ID)
    return MassExtension(
        request_identifier=request_id,
        bundle_id=scope.app.bundle_id,
        environment=scope.acting_environment,
        product_id=product_id,
        extend_by_days=days,
        extend_reason_code=reason,
        storefront_country_codes=_storefronts(body),
        requested_date=scope.state.now(),
    )


async def run_mass(state: SimulatorState, notifier: Notifier, mass: MassExtension) -> None:
    """Extend every eligible active subscriber of the product, then post the summary."""
    for purchase in candidates(state, mass):
        if refusal(purchase, state.now()) is None:
            extend(purchase, mass.extend_by_days, state.now())
            mass.succeeded_count += 1
            await _notify(state, notifier, purchase, EXTENDED)
        else:
            mass.failed_count += 1
            await _notify(state, notifier, purchase, FAILED)
    mass.complete_date = state.now()
    await deliver(state, notifier, summary_notification(state, mass))
    state.persist()


def extend_all(scope: Scope, notifier: Notifier, body: dict[str, Any]) -> dict[str, object]:
    mass = _mass_request(scope, body)
    if mass.request_identifier not in scope.state.mass_extensions:
        scope.state.mass_extensions[mass.request_identifier] = mass
        notifier.spawn(run_mass(scope.state, notifier, mass))
    return {"requestIdentifier": mass.request_identifier}


def mass_status(scope: Scope, product_id: str, request_identifier: str) -> dict[str, object]:
    request_id = as_uuid(request_identifier)
    if request_id is None:
        raise apple_error(ErrorCode.INVALID_REQUEST_IDENTIFIER)
    mass = scope.state.mass_extensions.get(request_id)
    if mass is None or mass.bundle_id != scope.app.bundle_id or mass.product_id != product_id:
        raise apple_error(ErrorCode.STATUS_REQUEST_NOT_FOUND)
    answer: dict[str, object] = {
        "requestIdentifier": mass.request_identifier,
        "complete": mass.complete_date is not None,
        "succeededCount": mass.succeeded_count,
        "failedCount": mass.failed_count,
    }
    if mass.complete_date is not None:
        answer["completeDate"] = mass.complete_date
    return answer


def add_routes(router: APIRouter, environment: Environment | None) -> None:
    @router.put("/inApps/v1/subscriptions/extend/{original_transaction_id}")
    async def extend_a_subscription_renewal_date(
        original_transaction_id: str, request: Request
    ) -> Response:
        scope = await begin(request, environment, "extend_renewal_date", original_transaction_id)
        body = await json_object(request)
        return json_response(extend_one(scope, notifier_of(request), original_transaction_id, body))

    @router.post("/inApps/v1/subscriptions/extend/mass")
    async def extend_renewal_dates_for_all_active_subscribers(request: Request) -> Response:
        scope = await begin(request, environment, "mass_extend")
        body = await json_object(request)
        return json_response(extend_all(scope, notifier_of(request), body))

    @router.get("/inApps/v1/subscriptions/extend/mass/{product_id}/{request_identifier}")
    async def get_status_of_subscription_renewal_date_extensions(
        product_id: str, request_identifier: str, request: Request
    ) -> Response:
        scope = await begin(request, environment, "mass_extend_status")
        return json_response(mass_status(scope, product_id, request_identifier))
