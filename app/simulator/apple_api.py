"""Apple's App Store Server API paths, with Apple's answers, authentication and errors.

Apple has one host per environment; the simulator has one. Under ``/inApps/...`` it serves every
transaction whatever its environment (the payload's ``environment`` says where it was made, and a
client's verifier checks it). Under ``/sandbox/inApps/...`` and ``/production/inApps/...`` it serves
only that environment's transactions (others answer 404 4040010), so a client whose base URL is
``<simulator>/sandbox`` sees what Apple's sandbox host would show.

A call is authenticated first (401, empty body), then injected faults apply (see ``faults``), then
the transaction id is checked (400 4000006) and looked up among the calling app's purchases
(404 4040010).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.simulator.auth import authenticate
from app.simulator.errors import (
    GENERAL_INTERNAL_RETRYABLE,
    INVALID_REQUEST_REVISION,
    INVALID_TRANSACTION_ID,
    RATE_LIMIT_EXCEEDED,
    EarlyAnswer,
    apple_error,
    json_response,
    not_found,
    unauthorized,
)
from app.simulator.faults import Fault, FaultKind, drop_response
from app.simulator.model import App, Environment, Purchase, Transaction
from app.simulator.payloads import signed_renewal_info, signed_transaction
from app.simulator.state import SimulatorState

HISTORY_PAGE_SIZE = 20
TAG = "App Store Server API"


@dataclass(frozen=True)
class Call:
    """An authorized call about one transaction that the caller may see."""

    state: SimulatorState
    app: App
    purchase: Purchase
    transaction: Transaction


def _fault_answer(state: SimulatorState, fault: Fault) -> Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        retry_at = str(state.now() + fault.retry_after_ms)
        return apple_error(429, RATE_LIMIT_EXCEEDED, {"Retry-After": retry_at}).response
    if fault.kind is FaultKind.SERVER_ERROR:
        return apple_error(500, GENERAL_INTERNAL_RETRYABLE).response
    if fault.kind is FaultKind.UNAUTHORIZED:
        return unauthorized().response
    if fault.kind is FaultKind.DROP:
        return drop_response()
    return not_found().response


async def apply_faults(state: SimulatorState, transaction_id: str) -> None:
    """Delay for each delay fault that fires, then answer for the first other one that does."""
    fired = state.faults.trigger(lambda scoped: state.same_purchase(scoped, transaction_id))
    for fault in fired:
        if fault.kind is FaultKind.DELAY:
            await asyncio.sleep(fault.delay_seconds)
    answer = next((fault for fault in fired if fault.kind is not FaultKind.DELAY), None)
    if answer is not None:
        raise EarlyAnswer(_fault_answer(state, answer))


def _visible(purchase: Purchase, app: App, environment: Environment | None) -> bool:
    if purchase.bundle_id != app.bundle_id:
        return False
    return environment is None or purchase.environment is environment


async def resolve(request: Request, transaction_id: str, environment: Environment | None) -> Call:
    """Authenticate, apply faults, find the transaction. Plain calls rather than nested
    dependencies: FastAPI's dependency solving was half the cost of a request."""
    state = cast(SimulatorState, request.app.state.simulator)
    app = authenticate(state, request.headers.get("authorization"))
    await apply_faults(state, transaction_id)
    if not transaction_id.isdigit():
        raise apple_error(400, INVALID_TRANSACTION_ID)
    found = state.find(transaction_id)
    if found is None or not _visible(found[0], app, environment):
        raise not_found()
    return Call(state, app, *found)


def _envelope(call: Call) -> dict[str, object]:
    return {
        "environment": call.purchase.environment.value,
        "bundleId": call.app.bundle_id,
        "appAppleId": call.app.app_apple_id,
    }


def status_body(call: Call, statuses: list[int] | None) -> dict[str, object]:
    """StatusResponse: the purchase's subscription group with its latest transaction."""
    purchase, signer, now = call.purchase, call.state.signer, call.state.now()
    status = int(purchase.status(now))
    groups: list[dict[str, object]] = []
    if purchase.is_subscription and (statuses is None or status in statuses):
        last = {
            "status": status,
            "originalTransactionId": purchase.original_transaction_id,
            "signedTransactionInfo": signed_transaction(signer, purchase, purchase.latest, now),
            "signedRenewalInfo": signed_renewal_info(signer, purchase, now),
        }
        group = purchase.subscription_group_identifier
        groups.append({"subscriptionGroupIdentifier": group, "lastTransactions": [last]})
    return _envelope(call) | {"data": groups}


def _offset(revision: str | None) -> int:
    if revision is None:
        return 0
    if not revision.isdigit():
        raise apple_error(400, INVALID_REQUEST_REVISION)
    return int(revision)


def history_body(call: Call, revision: str | None, descending: bool) -> dict[str, object]:
    """HistoryResponse: the purchase's transactions by purchase date, 20 a page."""
    ordered = sorted(call.purchase.transactions, key=lambda t: (t.purchase_date, t.transaction_id))
    if descending:
        ordered.reverse()
    start = _offset(revision)
    page = ordered[start : start + HISTORY_PAGE_SIZE]
    now = call.state.now()
    signed = [signed_transaction(call.state.signer, call.purchase, t, now) for t in page]
    end = start + len(page)
    return _envelope(call) | {
        "revision": str(end),
        "hasMore": end < len(ordered),
        "signedTransactions": signed,
    }


def build_router(environment: Environment | None) -> APIRouter:
    """The Apple paths, for every environment (``None``) or only one."""
    router = APIRouter(tags=[TAG])

    @router.get("/inApps/v1/transactions/{transaction_id}")
    async def get_transaction_info(transaction_id: str, request: Request) -> Response:
        call = await resolve(request, transaction_id, environment)
        signed = signed_transaction(
            call.state.signer, call.purchase, call.transaction, call.state.now()
        )
        return json_response({"signedTransactionInfo": signed})

    @router.get("/inApps/v1/subscriptions/{transaction_id}")
    async def get_all_subscription_statuses(
        transaction_id: str,
        request: Request,
        status: Annotated[list[int] | None, Query()] = None,
    ) -> Response:
        call = await resolve(request, transaction_id, environment)
        return json_response(status_body(call, status))

    @router.get("/inApps/v2/history/{transaction_id}")
    @router.get("/inApps/v1/history/{transaction_id}")
    async def get_transaction_history(
        transaction_id: str,
        request: Request,
        revision: str | None = None,
        sort: Literal["ASCENDING", "DESCENDING"] = "ASCENDING",
    ) -> Response:
        call = await resolve(request, transaction_id, environment)
        return json_response(history_body(call, revision, sort == "DESCENDING"))

    return router
