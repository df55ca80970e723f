"""Ask Apple about one transaction and verify everything it signed (SPEC §3, DESIGN decision 4).

`fetch_purchase` asks with one app's credentials, `find_purchase` with each of a publisher's apps
in turn. Both return the verified facts of a purchase, or raise `AppleTransient` (try again later)
or `AppleFinal` (the sync ends with that result).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from appstoreserverlibrary.api_client import APIException
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import JWSRenewalInfoDecodedPayload
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import JWSTransactionDecodedPayload
from appstoreserverlibrary.models.StatusResponse import StatusResponse
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)

from app.apple.gateway import AppleApp, AppleGateway
from app.apple.library import Throttled
from app.apple.verifier import millis_to_datetime
from app.enums import ActivityMetric, ProductType, SyncResult
from app.metrics import APPLE_CALLS, APPLE_LATENCY

T = TypeVar("T")
log = logging.getLogger(__name__)

NOT_FOUND = SyncResult.TRANSACTION_ID_NOT_FOUND
INVALID = SyncResult.INVALID_TRANSACTION
UNAVAILABLE = SyncResult.APPLE_UNAVAILABLE
RETRYABLE_CODES = {4040002, 4040004, 4040006, 5000001}
NOT_FOUND_CODES = {4040010, 4000006, 4040005}


class AppleTransient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class AppleFinal(Exception):
    def __init__(self, result: SyncResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result


@dataclass(frozen=True)
class ApplePurchase:
    """What Apple signed about a purchase, verified."""

    transaction_id: str
    original_transaction_id: str
    product_id: str
    product_type: str
    environment: str
    expires_at: datetime | None
    revoked_at: datetime | None
    in_trial: bool
    signed_at: datetime | None
    apple_status: int | None = None
    grace_expires_at: datetime | None = None
    auto_renew: bool = False
    latest_transaction_id: str | None = None
    bundle_id: str | None = None  # the app it was bought in
    app_account_token: str | None = None  # the UUID the app passed to StoreKit, if any
    # What Apple signed, verified and decoded (never the JWS itself): `transaction`, and for a
    # subscription `latestTransaction` (when another), `renewalInfo` and `status`.
    said: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def latest(self) -> str:
        return self.latest_transaction_id or self.transaction_id


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait: Apple sends Unix time in milliseconds; others send seconds or a date."""
    if not value:
        return None
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
        except (TypeError, ValueError):
            return None
    if number > 1e11:  # an absolute time in milliseconds
        return max(number / 1000 - now, 0.0)
    return max(number, 0.0)


def classify(exc: APIException) -> Exception:
    status, code = exc.http_status_code, exc.raw_api_error
    if status >= 500 or code in RETRYABLE_CODES:
        return AppleTransient(f"Apple answered {status} {code}")
    if code in NOT_FOUND_CODES or status == 404:
        return AppleFinal(NOT_FOUND, f"Apple answered {status} {code}")
    return AppleFinal(UNAVAILABLE, f"Apple refused the request: {status} {code}")


def _verified(call: Callable[[], T]) -> T:
    try:
        return call()
    except VerificationException as exc:
        if exc.status == VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
            raise AppleTransient("Apple's certificate status could not be checked") from exc
        raise AppleFinal(INVALID, f"signed data failed verification: {exc.status.name}") from exc


async def verify(gateway: AppleGateway, call: Callable[[], T]) -> T:
    """Verify off the event loop when online checks make blocking HTTP calls."""
    if gateway.settings.apple_online_checks:
        return await asyncio.to_thread(_verified, call)
    return _verified(call)


def claims_of(signed: str) -> dict[str, Any]:
    """The claims of a JWS, as JSON: to pick a verifier before verifying, or to keep what a
    verified one says. Empty when it is no JWS of a JSON object."""
    try:
        payload = signed.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _claimed_environment(signed: str) -> str | None:
    """The `environment` claim, read without verifying (the verifier checks it afterwards)."""
    value = claims_of(signed).get("environment")
    return value if isinstance(value, str) else None


def pick_verifier(gateway: AppleGateway, app: AppleApp, signed: str) -> SignedDataVerifier:
    """The verifier for the environment the data claims, if the app allows it.

    One base URL may serve both environments (APPLE_API_BASE_URL, a proxy, the simulator), so the
    signed environment decides; the verifier still checks it, with the signature and the chain.
    """
    allowed = app.environments()
    claimed = _claimed_environment(signed)
    environment = next((e for e in allowed if e.value == claimed), allowed[0])
    return gateway.verifier(app, environment)


async def _call(gateway: AppleGateway, publisher_id: int, operation: str, coroutine: Any) -> Any:
    started, outcome = time.perf_counter(), "ok"
    try:
        return await coroutine
    except Throttled as exc:
        outcome = "429"
        raise AppleTransient(str(exc), parse_retry_after(exc.retry_after)) from exc
    except APIException as exc:
        outcome = str(exc.raw_api_error or exc.http_status_code)
        raise classify(exc) from exc
    except httpx.TransportError as exc:
        outcome = type(exc).__name__
        raise AppleTransient(f"Apple unreachable: {type(exc).__name__}") from exc
    except Exception as exc:  # say, a 2xx body that is not JSON (a proxy's error page)
        outcome = type(exc).__name__
        raise AppleTransient(f"unexpected answer from Apple: {type(exc).__name__}") from exc
    finally:
        elapsed = time.perf_counter() - started
        APPLE_CALLS.labels(operation, outcome).inc()
        APPLE_LATENCY.labels(operation).observe(elapsed)
        label = f"{operation} {outcome}"
        gateway.activity.count(publisher_id, ActivityMetric.APPLE, label, int(elapsed * 1000))


async def _transaction_info(
    gateway: AppleGateway, app: AppleApp, transaction_id: str
) -> tuple[Environment, str]:
    """Ask each allowed environment in turn (Auto: Production, then Sandbox on 4040010 or 401)."""
    last: Exception = AppleFinal(NOT_FOUND, "no environment to ask")
    for environment in app.environments():
        client = gateway.client(app, environment)
        try:
            response = await _call(
                gateway,
                app.publisher_id,
                "get_transaction_info",
                client.get_transaction_info(transaction_id),
            )
            return environment, str(response.signedTransactionInfo)
        except AppleFinal as exc:
            last = exc
            if exc.result != NOT_FOUND and not refused(exc):
                raise
    raise last


def refused(exc: AppleFinal) -> bool:
    """Apple refused the app's credentials (401)."""
    cause = exc.__cause__
    return isinstance(cause, APIException) and cause.http_status_code == 401


def _in_trial(transaction: JWSTransactionDecodedPayload) -> bool:
    discount = transaction.rawOfferDiscountType
    return transaction.rawOfferType == 1 and discount in (None, "FREE_TRIAL")


def _purchase(
    transaction: JWSTransactionDecodedPayload, requested: str, signed: str
) -> ApplePurchase:
    if str(transaction.transactionId) != requested:
        raise AppleFinal(INVALID, "Apple signed another transaction than the one asked for")
    return ApplePurchase(
        transaction_id=requested,
        original_transaction_id=str(transaction.originalTransactionId),
        product_id=str(transaction.productId),
        product_type=str(transaction.rawType),
        environment=str(transaction.rawEnvironment),
        expires_at=millis_to_datetime(transaction.expiresDate),
        revoked_at=millis_to_datetime(transaction.revocationDate),
        in_trial=_in_trial(transaction),
        signed_at=millis_to_datetime(transaction.signedDate),
        bundle_id=None if transaction.bundleId is None else str(transaction.bundleId),
        app_account_token=_text(transaction.appAccountToken),
        said={"transaction": claims_of(signed)},
    )


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


async def fetch_purchase(
    gateway: AppleGateway, app: AppleApp, transaction_id: str
) -> ApplePurchase:
    environment, signed = await _transaction_info(gateway, app, transaction_id)
    verifier = pick_verifier(gateway, app, signed)
    transaction = await verify(
        gateway, lambda: verifier.verify_and_decode_signed_transaction(signed)
    )
    purchase = _purchase(transaction, transaction_id, signed)
    if purchase.product_type != ProductType.AUTO_RENEWABLE:
        return purchase
    return await _with_status(gateway, app, environment, purchase, (signed, transaction))


async def _with_status(
    gateway: AppleGateway,
    app: AppleApp,
    environment: Environment,
    purchase: ApplePurchase,
    verified: tuple[str, JWSTransactionDecodedPayload],
) -> ApplePurchase:
    """The subscription's current state: latest transaction, Apple's status, renewal info."""
    client = gateway.client(app, environment)
    statuses = client.get_all_subscription_statuses(purchase.transaction_id)
    response: StatusResponse = await _call(
        gateway, app.publisher_id, "get_all_subscription_statuses", statuses
    )
    for group in response.data or []:
        for item in group.lastTransactions or []:
            if str(item.originalTransactionId) == purchase.original_transaction_id:
                return await _merge_status(gateway, app, purchase, item, verified)
    return purchase


def _newest(*signed_dates: int | None) -> datetime | None:
    """As of when Apple's answer speaks: the newest signature among its parts."""
    dates = [d for d in signed_dates if d is not None]
    return millis_to_datetime(max(dates)) if dates else None


async def _merge_status(
    gateway: AppleGateway,
    app: AppleApp,
    purchase: ApplePurchase,
    item: Any,
    verified: tuple[str, JWSTransactionDecodedPayload],
) -> ApplePurchase:
    signed_transaction, signed_renewal = str(item.signedTransactionInfo), item.signedRenewalInfo
    verifier = pick_verifier(gateway, app, signed_transaction)
    if signed_transaction == verified[0]:  # the very JWS verified a moment ago
        latest = verified[1]
    else:
        latest = await verify(
            gateway, lambda: verifier.verify_and_decode_signed_transaction(signed_transaction)
        )
    renewal: JWSRenewalInfoDecodedPayload | None = None
    if signed_renewal:
        renewal = await verify(
            gateway, lambda: verifier.verify_and_decode_renewal_info(str(signed_renewal))
        )
    if str(latest.originalTransactionId) != purchase.original_transaction_id:
        raise AppleFinal(INVALID, "the subscription status belongs to another purchase")
    said = _said(purchase, signed_transaction, verified[0], signed_renewal, item.rawStatus)
    return ApplePurchase(
        transaction_id=purchase.transaction_id,
        original_transaction_id=purchase.original_transaction_id,
        product_id=str(latest.productId),
        product_type=purchase.product_type,
        environment=purchase.environment,
        expires_at=millis_to_datetime(latest.expiresDate),
        revoked_at=millis_to_datetime(latest.revocationDate) or purchase.revoked_at,
        in_trial=_in_trial(latest),
        signed_at=_newest(latest.signedDate, renewal.signedDate if renewal else None),
        apple_status=item.rawStatus,
        grace_expires_at=millis_to_datetime(renewal.gracePeriodExpiresDate) if renewal else None,
        auto_renew=bool(renewal and renewal.rawAutoRenewStatus == 1),
        latest_transaction_id=str(latest.transactionId),
        bundle_id=purchase.bundle_id,
        app_account_token=purchase.app_account_token or _text(latest.appAccountToken),
        said=said,
    )


def _said(
    purchase: ApplePurchase, latest: str, first: str, renewal: str | None, status: int | None
) -> dict[str, Any]:
    """What Apple signed about the purchase, every part verified already."""
    said = dict(purchase.said or {})
    if latest != first:
        said["latestTransaction"] = claims_of(latest)
    if renewal:
        said["renewalInfo"] = claims_of(str(renewal))
    if status is not None:
        said["status"] = status
    return said


async def find_purchase(
    gateway: AppleGateway, apps: Sequence[AppleApp], transaction_id: str
) -> ApplePurchase:
    """Ask each app in the order given until one knows the transaction (an app Apple answers
    4040010 for, in each of its environments, passes it on).

    An app whose credentials Apple refuses (401) is logged and skipped; a transient failure of one
    app is kept while the others are asked. Then, when no app knew it: that transient failure if
    there was one (the app may know it: the sync tries again later), else TRANSACTION_ID_NOT_FOUND
    if at least one app could be asked, else (every app refused) APPLE_UNAVAILABLE. Anything else
    final (a signature that fails verification) ends it at once.
    """
    transient: AppleTransient | None = None
    asked, skipped = [], []
    for app in apps:
        try:
            return await fetch_purchase(gateway, app, transaction_id)
        except AppleTransient as exc:
            transient = transient or exc
        except AppleFinal as exc:
            if refused(exc):
                skipped.append(app.bundle_id)
                fields = {"publisherId": app.publisher_id, "bundleId": app.bundle_id}
                log.warning("Apple refused the app's credentials (401)", extra={"fields": fields})
                continue
            if exc.result != NOT_FOUND:
                raise
            asked.append(app.bundle_id)
    if transient is not None:
        raise transient
    refusals = f"; Apple refused the credentials of {', '.join(skipped)}" if skipped else ""
    if asked:
        raise AppleFinal(NOT_FOUND, f"not found in {', '.join(asked)}{refusals}")
    if skipped:
        raise AppleFinal(UNAVAILABLE, f"Apple refused the credentials of {', '.join(skipped)}")
    raise AppleFinal(NOT_FOUND, "the publisher has no app to ask")
