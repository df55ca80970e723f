"""Apple's decoded payloads (JWSTransaction, JWSRenewalInfo) and their cached signatures."""

from __future__ import annotations

from app.simulator.model import App, AppTransaction, Phase, Purchase, Transaction
from app.simulator.signing import JwsSigner

STOREFRONT = "USA"
STOREFRONT_ID = "143441"
APPLICATION_VERSION = "1"
ORIGINAL_PLATFORM = "iOS"
# Apple keeps retrying the payment during a billing grace period too.
_RETRYING = (Phase.BILLING_RETRY, Phase.GRACE_PERIOD)


def _without_none(values: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}


def transaction_payload(purchase: Purchase, transaction: Transaction) -> dict[str, object]:
    """The decoded JWSTransaction: fields Apple omits when empty are left out."""
    subscription = purchase.is_subscription
    return _without_none(
        {
            "transactionId": transaction.transaction_id,
            "originalTransactionId": purchase.original_transaction_id,
            "webOrderLineItemId": transaction.web_order_line_item_id,
            "bundleId": purchase.bundle_id,
            "productId": purchase.product_id,
            "subscriptionGroupIdentifier": (
                purchase.subscription_group_identifier if subscription else None
            ),
            "purchaseDate": transaction.purchase_date,
            "originalPurchaseDate": purchase.original.purchase_date,
            "expiresDate": transaction.expires_date,
            "quantity": purchase.quantity,
            "type": purchase.product_type.apple_name,
            "appAccountToken": purchase.app_account_token,
            "inAppOwnershipType": purchase.ownership.value,
            "signedDate": transaction.signed_date,
            "environment": purchase.environment.value,
            "transactionReason": transaction.reason,
            "storefront": STOREFRONT,
            "storefrontId": STOREFRONT_ID,
            "price": purchase.price,
            "currency": purchase.currency,
            "offerType": purchase.offer_type,
            "revocationDate": transaction.revocation_date,
            "revocationReason": transaction.revocation_reason,
            "revocationType": transaction.revocation_type,
            "appTransactionId": purchase.app_transaction_id or None,
        }
    )


def renewal_payload(purchase: Purchase) -> dict[str, object]:
    """The decoded JWSRenewalInfo of an auto-renewable subscription."""
    return _without_none(
        {
            "originalTransactionId": purchase.original_transaction_id,
            "productId": purchase.product_id,
            "autoRenewProductId": purchase.product_id,
            "autoRenewStatus": 1 if purchase.auto_renew else 0,
            "expirationIntent": purchase.expiration_intent,
            "isInBillingRetryPeriod": purchase.phase in _RETRYING,
            "gracePeriodExpiresDate": purchase.grace_period_expires_date,
            "renewalDate": purchase.latest.expires_date,
            "recentSubscriptionStartDate": purchase.original.purchase_date,
            "renewalPrice": purchase.price,
            "currency": purchase.currency,
            "appAccountToken": purchase.app_account_token,
            "signedDate": purchase.renewal_signed_date,
            "environment": purchase.environment.value,
            "appTransactionId": purchase.app_transaction_id or None,
        }
    )


def app_transaction_payload(app: App, record: AppTransaction, now: int) -> dict[str, object]:
    """The decoded AppTransaction: the customer's download of the app."""
    return {
        "receiptType": record.environment.value,
        "appAppleId": app.app_apple_id,
        "bundleId": app.bundle_id,
        "applicationVersion": APPLICATION_VERSION,
        "versionExternalIdentifier": 0,
        "receiptCreationDate": now,
        "originalPurchaseDate": record.original_purchase_date,
        "originalApplicationVersion": APPLICATION_VERSION,
        "appTransactionId": record.app_transaction_id,
        "originalPlatform": ORIGINAL_PLATFORM,
        "signedDate": now,
    }


# Apple signs what it answers at the time it answers (signedDate = now). The simulator keeps a
# signature for up to a second, so a load test does not re-sign every answer, then signs anew.
FRESH_MS = 1000


def signed_transaction(
    signer: JwsSigner, purchase: Purchase, transaction: Transaction, now: int
) -> str:
    """The transaction's JWS, signed again after it changed or once it is a second old."""
    if transaction.signed is None or now - transaction.signed_date > FRESH_MS:
        transaction.changed(now)
        transaction.signed = signer.sign(transaction_payload(purchase, transaction))
    return transaction.signed


def signed_renewal_info(signer: JwsSigner, purchase: Purchase, now: int) -> str:
    if purchase.renewal_signed is None or now - purchase.renewal_signed_date > FRESH_MS:
        purchase.renewal_changed(now)
        purchase.renewal_signed = signer.sign(renewal_payload(purchase))
    return purchase.renewal_signed
