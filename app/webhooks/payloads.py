"""The `data` of every webhook topic, with exactly the fields SPEC §5 lists. Dates ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.models import Subscription, Synchronization

PAYMENT_GATEWAY = "apple"
AUTO_RENEWABLE = "Auto-Renewable Subscription"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def access_end(subscription: Subscription) -> datetime | None:
    """Until when the subscription grants access: its expiry, or the end of a billing grace
    period (Apple status 4) when that is later; None for good."""
    until, grace = subscription.expires_at, subscription.grace_expires_at
    if grace is not None and subscription.apple_status == 4:
        return max(until, grace) if until else grace
    return until


def is_active(subscription: Subscription, now: datetime) -> bool:
    """The access rule of SPEC §4, applied to what is stored about the subscription."""
    if subscription.status != "active" or subscription.revoked_at is not None:
        return False
    until = access_end(subscription)
    return until is None or now < until


def in_app_data(
    transaction_id: str,
    original_transaction_id: str | None,
    product_id: str | None,
    environment: str | None,
) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "originalTransactionId": original_transaction_id,
        "productId": product_id,
        "environment": environment,
    }


def sync_result(sync: Synchronization) -> dict[str, Any]:
    return {
        "synchronizationId": sync.id,
        "transactionId": sync.transaction_id,
        "cleengCustomerId": sync.customer_id,
        "originalTransactionId": sync.original_transaction_id,
        "accessGranted": bool(sync.access_granted),
        "offerId": sync.offer_id,
        "result": sync.result,
    }


def validation_succeeded(
    sync: Synchronization,
    subscription: Subscription,
    result: str,
    now: datetime,
    previous: Subscription | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "result": result,
        "paymentGateway": PAYMENT_GATEWAY,
        "offerId": subscription.offer_id,
        "offerType": "subscription" if subscription.product_type == AUTO_RENEWABLE else "pass",
        "subscriptionId": subscription.id,
        "customerId": subscription.customer_id,
        "active": is_active(subscription, now),
        "inTrial": subscription.in_trial,
        "expirationDate": iso(access_end(subscription)),
    }
    if previous is not None:
        data["prevSubscriptionId"] = previous.id
        data["prevCustomerId"] = previous.customer_id
    if sync.correlation_id is not None:
        data["correlationId"] = sync.correlation_id
    data["inAppSpecificData"] = in_app_data(
        sync.transaction_id,
        subscription.original_transaction_id,
        subscription.product_id,
        subscription.environment,
    )
    return data


def validation_failed(
    sync: Synchronization, product_id: str | None, environment: str | None
) -> dict[str, Any]:
    return {
        "customerId": sync.customer_id,
        "paymentGateway": PAYMENT_GATEWAY,
        "reason": sync.result,
        "correlationId": sync.correlation_id,
        "inAppSpecificData": in_app_data(
            sync.transaction_id, sync.original_transaction_id, product_id, environment
        ),
    }


def subscription_event(subscription: Subscription, now: datetime, **extra: Any) -> dict[str, Any]:
    """subscriptionCreated, …Terminated (with `reason`), …Renewed, …Expired, …AutoRenewChanged."""
    return {
        "subscriptionId": subscription.id,
        "offerId": subscription.offer_id,
        "customerId": subscription.customer_id,
        "active": is_active(subscription, now),
        "expirationDate": iso(access_end(subscription)),
        "paymentGateway": PAYMENT_GATEWAY,
        **extra,
    }
