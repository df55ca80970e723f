"""Ask Apple about one transaction and verify everything it signed (docs/api.md §3, docs/design.md, decision 4).

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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

from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp, AppleGateway
from app.apple.library import AppleClient, Throttled
from app.apple.verifier import millis_to_datetime
from app.enums import ActivityMetric, SyncResult
from app.metrics import APPLE_CALLS, APPLE_LATENCY

T = TypeVar("T")
log = logging.getLogger(__name__)

NOT_FOUND = SyncResult.TRANSACTION_ID_NOT_FOUND
INVALID = SyncResult.INVALID_TRANSACTION
UNAVAILABLE = SyncResult.APPLE_UNAVAILABLE
RETRYABLE_CODES = {4040002, 4040004, 4040006, 5000001}
NOT_FOUND_CODES = {4040010, 4000006, 4040005}
RETRY_AFTER_DEFAULT = 60.0  # seconds, for a 429 without a usable Retry-After


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
    # What Apple signed, verified and decoded (never the JWS itself): `transaction` (the one asked
    # about, when Apple returned it by itself), and for a subscription `latestTransaction` (when
    # another, or the only one returned), `renewalInfo` and `status`.
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


async def call(
    gateway: AppleGateway,
    app: AppleApp,
    environment: Environment,
    operation: str,
    request: Callable[[AppleClient], Awaitable[T]],
    *,
    background: bool = False,
) -> T:
    """One call to Apple's API within its budget (`OverBudget` when there is none now), its
    failures classified: `AppleTransient`, `AppleFinal`; a 429 pauses the app everywhere."""
    env = environment.value
    await gateway.budget.take(app.publisher_id, app.bundle_id, env, operation, background)
    started, outcome = time.perf_counter(), "ok"
    try:
        return await request(gateway.client(app, environment))
    except Throttled as exc:
        outcome = "429"
        wait = parse_retry_after(exc.retry_after) or RETRY_AFTER_DEFAULT
        until = datetime.now(UTC) + timedelta(seconds=wait)
        await gateway.budget.pause(app.publisher_id, app.bundle_id, env, until)
        raise OverBudget(until, "Apple's rate limit (429)") from exc
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
        gateway.activity.count(app.publisher_id, ActivityMetric.APPLE, label, int(elapsed * 1000))


def apple_code(exc: BaseException) -> int | None:
    """The error code Apple answered with (`errorCode`), when the failure was Apple's answer."""
    cause = exc if isinstance(exc, APIException) else exc.__cause__
    return cause.raw_api_error if isinstance(cause, APIException) else None


def refused(exc: AppleFinal) -> bool:
    """Apple refused the app's credentials (401)."""
    cause = exc.__cause__
    return isinstance(cause, APIException) and cause.http_status_code == 401


def _in_trial(transaction: JWSTransactionDecodedPayload) -> bool:
    discount = transaction.rawOfferDiscountType
    return transaction.rawOfferType == 1 and discount in (None, "FREE_TRIAL")


def _facts(transaction: JWSTransactionDecodedPayload, signed: str) -> ApplePurchase:
    """What a verified transaction (and its JWS) says of its purchase."""
    return ApplePurchase(
        transaction_id=str(transaction.transactionId),
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


def _purchase(
    transaction: JWSTransactionDecodedPayload, requested: str, signed: str
) -> ApplePurchase:
    if str(transaction.transactionId) != requested:
        raise AppleFinal(INVALID, "Apple signed another transaction than the one asked for")
    return _facts(transaction, signed)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


async def fetch_purchase(
    gateway: AppleGateway, app: AppleApp, transaction_id: str
) -> ApplePurchase:
    """Apple's verified word on the transaction, asking each environment the app allows in turn
    (Auto: Production, then Sandbox when Production does not know it or refuses the key)."""
    last: Exception = AppleFinal(NOT_FOUND, "no environment to ask")
    for environment in app.environments():
        try:
            return await _fetch_in(gateway, app, environment, transaction_id)
        except AppleFinal as exc:
            last = exc
            if exc.result != NOT_FOUND and not refused(exc):
                raise
    raise last


async def _fetch_in(
    gateway: AppleGateway, app: AppleApp, environment: Environment, transaction_id: str
) -> ApplePurchase:
    """One call for a subscription: Get All Subscription Statuses, asked with the transaction,
    answers only if Apple knows it, and carries the subscription's latest transaction and renewal
    info, each verified. Only when the transaction is none of its subscriptions' (a one-time
    purchase; a renewal that is no longer the latest) is Get Transaction Info asked too."""
    response: StatusResponse = await call(
        gateway,
        app,
        environment,
        "get_all_subscription_statuses",
        lambda client: client.get_all_subscription_statuses(transaction_id),
    )
    item = _subscription_of(response, transaction_id)
    if item is not None:
        return await _merge_status(gateway, app, transaction_id, item, None)
    answer = await call(
        gateway,
        app,
        environment,
        "get_transaction_info",
        lambda client: client.get_transaction_info(transaction_id),
    )
    signed = str(answer.signedTransactionInfo)
    verifier = pick_verifier(gateway, app, signed)
    transaction = await verify(
        gateway, lambda: verifier.verify_and_decode_signed_transaction(signed)
    )
    purchase = _purchase(transaction, transaction_id, signed)
    original = purchase.original_transaction_id
    for candidate in _items(response):
        if str(candidate.originalTransactionId) == original:
            return await _merge_status(gateway, app, transaction_id, candidate, (signed, purchase))
    return purchase


async def subscription_status(
    gateway: AppleGateway,
    app: AppleApp,
    environment: Environment,
    original: str,
    *,
    background: bool = False,
) -> ApplePurchase | None:
    """The purchase's subscription as Apple holds it now (Get All Subscription Statuses, every
    part verified), named by its latest transaction; None when the answer has no subscription of
    that purchase."""
    response: StatusResponse = await call(
        gateway,
        app,
        environment,
        "get_all_subscription_statuses",
        lambda client: client.get_all_subscription_statuses(original),
        background=background,
    )
    item = _subscription_of(response, original)
    if item is None:
        return None
    state = await _merge_status(gateway, app, original, item, None)
    return replace(state, transaction_id=state.latest)


def _items(response: StatusResponse) -> list[Any]:
    return [item for group in response.data or [] for item in group.lastTransactions or []]


def _unverified_ids(signed: str) -> tuple[str | None, str | None]:
    """The transaction and original transaction ids a JWS claims: only to pick it among others;
    it is verified before anything is read from it."""
    try:
        payload = signed.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    return _text(claims.get("transactionId")), _text(claims.get("originalTransactionId"))


def _subscription_of(response: StatusResponse, transaction_id: str) -> Any | None:
    """The subscription whose latest transaction, or whose original one, is the transaction."""
    for item in _items(response):
        latest, original = _unverified_ids(str(item.signedTransactionInfo))
        if transaction_id in (latest, original):
            return item
    return None


def _newest(*signed_dates: int | None) -> datetime | None:
    """As of when Apple's answer speaks: the newest signature among its parts."""
    dates = [d for d in signed_dates if d is not None]
    return millis_to_datetime(max(dates)) if dates else None


async def _latest(
    gateway: AppleGateway, app: AppleApp, item: Any, known: tuple[str, ApplePurchase] | None
) -> tuple[ApplePurchase, JWSRenewalInfoDecodedPayload | None]:
    """A subscription status's latest transaction and renewal info, each verified (the latest
    transaction is not verified twice when it is the one just verified)."""
    signed_transaction, signed_renewal = str(item.signedTransactionInfo), item.signedRenewalInfo
    verifier = pick_verifier(gateway, app, signed_transaction)
    if known is not None and signed_transaction == known[0]:
        latest = known[1]
    else:
        decoded = await verify(
            gateway, lambda: verifier.verify_and_decode_signed_transaction(signed_transaction)
        )
        latest = _facts(decoded, signed_transaction)
    renewal: JWSRenewalInfoDecodedPayload | None = None
    if signed_renewal:
        renewal = await verify(
            gateway, lambda: verifier.verify_and_decode_renewal_info(str(signed_renewal))
        )
    return latest, renewal


async def _merge_status(
    gateway: AppleGateway,
    app: AppleApp,
    transaction_id: str,
    item: Any,
    known: tuple[str, ApplePurchase] | None,
) -> ApplePurchase:
    """The purchase asked about as of its subscription's status. `known`: the transaction asked
    about, already verified (its JWS and facts), when it was asked for by itself."""
    latest, renewal = await _latest(gateway, app, item, known)
    asked = known[1] if known is not None else latest
    ours = transaction_id in (latest.transaction_id, latest.original_transaction_id)
    if not ours and latest.original_transaction_id != asked.original_transaction_id:
        raise AppleFinal(INVALID, "the subscription status belongs to another purchase")
    return ApplePurchase(
        transaction_id=transaction_id,
        original_transaction_id=latest.original_transaction_id,
        product_id=latest.product_id,
        product_type=latest.product_type,
        environment=latest.environment,
        expires_at=latest.expires_at,
        revoked_at=latest.revoked_at or asked.revoked_at,
        in_trial=latest.in_trial,
        signed_at=_newest(_millis(latest.signed_at), renewal.signedDate if renewal else None),
        apple_status=item.rawStatus,
        grace_expires_at=millis_to_datetime(renewal.gracePeriodExpiresDate) if renewal else None,
        auto_renew=bool(renewal and renewal.rawAutoRenewStatus == 1),
        latest_transaction_id=latest.transaction_id,
        bundle_id=asked.bundle_id or latest.bundle_id,
        app_account_token=asked.app_account_token or latest.app_account_token,
        said=_said(transaction_id, latest, known, item),
    )


def _said(
    transaction_id: str, latest: ApplePurchase, known: tuple[str, ApplePurchase] | None, item: Any
) -> dict[str, Any]:
    """What Apple signed about the purchase, every part verified already: the transaction asked
    about when Apple returned it, the latest one when another (or when only it came back), the
    renewal info and Apple's status of the subscription."""
    said: dict[str, Any] = {}
    latest_claims = (latest.said or {}).get("transaction", {})
    if known is not None:
        said["transaction"] = (known[1].said or {}).get("transaction", {})
        if known[0] != str(item.signedTransactionInfo):
            said["latestTransaction"] = latest_claims
    elif latest.transaction_id == transaction_id:
        said["transaction"] = latest_claims
    else:
        said["latestTransaction"] = latest_claims
    if item.signedRenewalInfo:
        said["renewalInfo"] = claims_of(str(item.signedRenewalInfo))
    if item.rawStatus is not None:
        said["status"] = item.rawStatus
    return said


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


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
