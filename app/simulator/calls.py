"""What every App Store Server API call does first: authenticate (401, empty body), then count it
against the app's rate limit (429, see ``ratelimit``), then injected faults; and the look-ups the
calls share.

Apple has one host per environment; the simulator has one. Under ``/inApps/...`` it serves every
transaction whatever its environment (the payload's ``environment`` says where it was made, and a
client's verifier checks it); a call that names no transaction acts for the app's ``environment``.
Under ``/sandbox/inApps/...`` and ``/production/inApps/...`` it serves only that environment, so a
client whose base URL is ``<simulator>/sandbox`` sees what Apple's sandbox host would show.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request
from starlette.responses import HTMLResponse, Response

from app.simulator.auth import authenticate
from app.simulator.errors import (
    EarlyAnswer,
    ErrorCode,
    apple_error,
    not_found,
    unauthorized,
)
from app.simulator.faults import Fault, FaultKind, drop_response
from app.simulator.model import App, Environment, Purchase, Transaction
from app.simulator.state import Customer, SimulatorState

TAG = "App Store Server API"
PAGE_SIZE = 20


@dataclass(frozen=True)
class Scope:
    """An authenticated call: the calling app, and the one environment it sees (``None``: all)."""

    state: SimulatorState
    app: App
    environment: Environment | None

    @property
    def acting_environment(self) -> Environment:
        return self.environment or self.app.environment

    def sees(self, customer: Customer) -> bool:
        bundle_id, environment, _ = customer
        visible = self.environment is None or environment is self.environment
        return bundle_id == self.app.bundle_id and visible

    def envelope(self, customer: Customer) -> dict[str, object]:
        """The app and environment that answers about a customer carry."""
        return {
            "environment": customer[1].value,
            "bundleId": self.app.bundle_id,
            "appAppleId": self.app.app_apple_id,
        }


def state_of(request: Request) -> SimulatorState:
    return cast(SimulatorState, request.app.state.simulator)


def _fault_answer(state: SimulatorState, fault: Fault) -> Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        retry_at = str(state.now() + fault.retry_after_ms)
        return apple_error(ErrorCode.RATE_LIMIT_EXCEEDED, {"Retry-After": retry_at}).response
    if fault.kind is FaultKind.SERVER_ERROR:
        return apple_error(ErrorCode.GENERAL_INTERNAL_RETRYABLE).response
    if fault.kind is FaultKind.UNAUTHORIZED:
        return unauthorized().response
    if fault.kind is FaultKind.DROP:
        return drop_response()
    if fault.kind is FaultKind.NOT_JSON:
        return HTMLResponse("<html>bad gateway</html>")
    if fault.error_code is not None:
        return apple_error(ErrorCode(fault.error_code)).response
    return not_found().response


async def apply_faults(state: SimulatorState, about: str | None) -> None:
    """Delay for each delay fault that fires, then answer for the first other one that does.
    A fault scoped to a purchase fires only for calls about one of its transactions."""

    def concerns(scoped: str) -> bool:
        return about is not None and state.same_purchase(scoped, about)

    fired = state.faults.trigger(concerns)
    for fault in fired:
        if fault.kind is FaultKind.DELAY:
            await asyncio.sleep(fault.delay_seconds)
    answer = next((fault for fault in fired if fault.kind is not FaultKind.DELAY), None)
    if answer is not None:
        raise EarlyAnswer(_fault_answer(state, answer))


def _charged_environment(
    state: SimulatorState, app: App, environment: Environment | None, about: str | None
) -> Environment:
    """Whose budget a call uses: its host's environment; at the root, that of the transaction it
    names, else the app's."""
    if environment is not None:
        return environment
    customer = state.customer_of(about) if about else None
    if customer is not None and customer[0] == app.bundle_id:
        return customer[1]
    return app.environment


def check_rate(
    state: SimulatorState,
    app: App,
    environment: Environment | None,
    endpoint: str,
    about: str | None,
) -> None:
    charged = _charged_environment(state, app, environment, about)
    retry_at = state.limits.admit(app.bundle_id, charged, endpoint, state.now())
    if retry_at is not None:
        raise apple_error(ErrorCode.RATE_LIMIT_EXCEEDED, {"Retry-After": str(retry_at)})


async def begin(
    request: Request, environment: Environment | None, endpoint: str, about: str | None = None
) -> Scope:
    """Authenticate the call, count it against its rate limit, then apply faults. Plain calls
    rather than nested dependencies: FastAPI's dependency solving was half the cost of a request."""
    state = state_of(request)
    app = authenticate(state, request.headers.get("authorization"))
    check_rate(state, app, environment, endpoint, about)
    await apply_faults(state, about)
    return Scope(state, app, environment)


def is_id(value: str) -> bool:
    return value.isascii() and value.isdigit()


def find_transaction(scope: Scope, transaction_id: str) -> tuple[Purchase, Transaction]:
    """A transaction the caller may see: 4000006 if malformed, 4000048 if an app transaction,
    4040010 if unknown."""
    if not is_id(transaction_id):
        raise apple_error(ErrorCode.INVALID_TRANSACTION_ID)
    found = scope.state.find(transaction_id)
    if found is None or not scope.sees(found[0].customer):
        if _is_app_transaction(scope, transaction_id):
            raise apple_error(ErrorCode.APP_TRANSACTION_ID_NOT_SUPPORTED)
        raise not_found()
    return found


def _is_app_transaction(scope: Scope, app_transaction_id: str) -> bool:
    record = scope.state.app_transactions.get(app_transaction_id)
    return record is not None and record.bundle_id == scope.app.bundle_id


def find_customer(scope: Scope, any_id: str) -> Customer:
    """Whose transaction, original transaction or app transaction ``any_id`` is."""
    if not is_id(any_id):
        raise apple_error(ErrorCode.INVALID_TRANSACTION_ID)
    customer = scope.state.customer_of(any_id)
    if customer is None or not scope.sees(customer):
        raise not_found()
    return customer


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body, or 4000000."""
    try:
        body = json.loads(await request.body())
    except ValueError as error:
        raise apple_error(ErrorCode.GENERAL_BAD_REQUEST) from error
    if not isinstance(body, dict):
        raise apple_error(ErrorCode.GENERAL_BAD_REQUEST)
    return body


def no_content(status_code: int = 200) -> Response:
    return Response(status_code=status_code)
