"""App Store Server Notifications V2: verify the signed payload and the signed data inside it.

Apple's `SignedDataVerifier.verify_and_decode_notification` checks the payload's signature, chain,
bundle id (and app id in Production) and environment, but not the `signedTransactionInfo` and
`signedRenewalInfo` it carries (docs/design.md, decision 4): those are verified here too, with the same
verifier. Anything that fails raises `AppleFinal` (refuse it) or `AppleTransient` (the certificate
status could not be checked: Apple should send it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException

from app.apple.gateway import AppleApp, AppleGateway
from app.apple.transactions import INVALID, AppleFinal, ApplePurchase, verify
from app.apple.verifier import millis_to_datetime

ENVIRONMENT_SOURCES = ("data", "summary", "appData")
# Where a notification names its app (Apple sends one of `data`, `summary`, `externalPurchaseToken`).
BUNDLE_SOURCES = ("data", "summary", "externalPurchaseToken", "appData")


@dataclass(frozen=True)
class VerifiedNotification:
    """What a notification says, every signed part of it verified."""

    notification_uuid: str
    notification_type: str
    subtype: str | None
    signed_at: datetime
    environment: str | None
    transaction: dict[str, Any] | None
    renewal: dict[str, Any] | None
    apple_status: int | None

    @property
    def original_transaction_id(self) -> str | None:
        value = self.transaction.get("originalTransactionId") if self.transaction else None
        return None if value is None else str(value)

    @property
    def transaction_id(self) -> str | None:
        value = self.transaction.get("transactionId") if self.transaction else None
        return None if value is None else str(value)


def claims_of(signed: str) -> dict[str, Any]:
    """The claims of a JWS, unverified: only to pick a verifier, or after verifying it."""
    try:
        claims = jwt.decode(signed, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AppleFinal(INVALID, "signedPayload is not a JWS") from exc
    if not isinstance(claims, dict):
        raise AppleFinal(INVALID, "signedPayload is not a JSON object")
    return claims


def claimed_environment(claims: dict[str, Any]) -> str | None:
    """The environment a notification says it comes from (`data`, `summary` or `appData`)."""
    for source in ENVIRONMENT_SOURCES:
        part = claims.get(source)
        if isinstance(part, dict) and isinstance(part.get("environment"), str):
            return str(part["environment"])
    return None


def claimed_bundle(claims: dict[str, Any]) -> str | None:
    """The app a notification says it is about, unverified: only to choose its verifier, which
    then checks it with the signature."""
    for source in BUNDLE_SOURCES:
        part = claims.get(source)
        if isinstance(part, dict) and isinstance(part.get("bundleId"), str):
            return str(part["bundleId"])
    return None


def notification_verifier(gateway: AppleGateway, app: AppleApp, signed: str) -> SignedDataVerifier:
    """The verifier of the claimed environment when the app allows it, else its first."""
    allowed = app.environments()
    claimed = claimed_environment(claims_of(signed))
    environment = next((e for e in allowed if e.value == claimed), allowed[0])
    try:
        return gateway.verifier(app, environment)
    except ValueError as exc:  # Production without an appAppleId
        raise AppleFinal(INVALID, f"no verifier for {environment.value}: {exc}") from exc


def _nested(verifier: SignedDataVerifier, data: Any) -> tuple[dict[str, Any] | None, ...]:
    """Verify the signed transaction and renewal info carried in the notification's `data`."""
    signed_transaction = getattr(data, "signedTransactionInfo", None)
    signed_renewal = getattr(data, "signedRenewalInfo", None)
    transaction = renewal = None
    if signed_transaction:
        verifier.verify_and_decode_signed_transaction(signed_transaction)
        transaction = claims_of(signed_transaction)
    if signed_renewal:
        verifier.verify_and_decode_renewal_info(signed_renewal)
        renewal = claims_of(signed_renewal)
    if transaction and renewal:
        original = renewal.get("originalTransactionId")
        if str(original) != str(transaction.get("originalTransactionId")):
            raise AppleFinal(INVALID, "the renewal info belongs to another purchase")
    return transaction, renewal


def _required(value: Any, name: str) -> Any:
    if value is None or value == "":
        raise AppleFinal(INVALID, f"the notification has no {name}")
    return value


def _verify_all(verifier: SignedDataVerifier, signed: str) -> VerifiedNotification:
    """Blocking (online checks make HTTP calls): run through `verify`, off the event loop."""
    decoded = verifier.verify_and_decode_notification(signed)
    transaction, renewal = _nested(verifier, decoded.data)
    signed_at = millis_to_datetime(int(_required(decoded.signedDate, "signedDate")))
    assert signed_at is not None
    environment = getattr(decoded.data, "rawEnvironment", None)
    return VerifiedNotification(
        notification_uuid=str(_required(decoded.notificationUUID, "notificationUUID")),
        notification_type=str(_required(decoded.rawNotificationType, "notificationType")),
        subtype=decoded.rawSubtype,
        signed_at=signed_at,
        environment=environment if isinstance(environment, str) else None,
        transaction=transaction,
        renewal=renewal,
        apple_status=getattr(decoded.data, "rawStatus", None),
    )


def _refusing_malformed(verifier: SignedDataVerifier, signed: str) -> VerifiedNotification:
    """Signed garbage (wrong shapes, wrong types) is refused like a bad signature."""
    try:
        return _verify_all(verifier, signed)
    except (AppleFinal, VerificationException):
        raise
    except Exception as exc:  # the library's structuring errors, bad numbers, wrong shapes
        raise AppleFinal(INVALID, f"the notification is malformed: {type(exc).__name__}") from exc


async def verify_notification(
    gateway: AppleGateway, app: AppleApp, signed: str
) -> VerifiedNotification:
    verifier = notification_verifier(gateway, app, signed)
    return await verify(gateway, lambda: _refusing_malformed(verifier, signed))


def _millis(claims: dict[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    return millis_to_datetime(int(value)) if isinstance(value, int | float) else None


def _in_trial(transaction: dict[str, Any]) -> bool:
    discount = transaction.get("offerDiscountType")
    return transaction.get("offerType") == 1 and discount in (None, "FREE_TRIAL")


def purchase_facts(
    transaction: dict[str, Any],
    renewal: dict[str, Any] | None,
    apple_status: int | None,
    signed_at: datetime,
) -> ApplePurchase:
    """The purchase as the notification shows it, dated by the notification's `signedDate`."""
    transaction_id = str(transaction["transactionId"])
    return ApplePurchase(
        transaction_id=transaction_id,
        original_transaction_id=str(transaction["originalTransactionId"]),
        product_id=str(transaction.get("productId", "")),
        product_type=str(transaction.get("type", "")),
        environment=str(transaction.get("environment", "")),
        expires_at=_millis(transaction, "expiresDate"),
        revoked_at=_millis(transaction, "revocationDate"),
        in_trial=_in_trial(transaction),
        signed_at=signed_at,
        apple_status=apple_status,
        grace_expires_at=_millis(renewal, "gracePeriodExpiresDate") if renewal else None,
        auto_renew=bool(renewal and renewal.get("autoRenewStatus") == 1),
        latest_transaction_id=transaction_id,
        bundle_id=_text(transaction, "bundleId"),
        app_account_token=_text(transaction, "appAccountToken"),
    )


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None
