"""The events of a sync (docs/api.md §5): validation succeeded or failed, and the sync's result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.enums import ProductType, SyncResult, Topic
from app.purchases.repository import Sync
from app.subscriptions.access import access_end, is_active
from app.subscriptions.events import PAYMENT_GATEWAY, Event, iso
from app.subscriptions.model import Subscription

VALIDATION_RESULT = {
    SyncResult.SUBSCRIPTION_CREATED: "SubscriptionCreated",
    SyncResult.PURCHASE_OWNERSHIP_UNCHANGED: "SubscriptionSynchronized",
    SyncResult.PURCHASE_OWNERSHIP_TRANSFERRED: "SubscriptionTransferred",
}


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


def sync_result(sync: Sync) -> Event:
    data = {
        "synchronizationId": sync.id,
        "transactionId": sync.transaction_id,
        "cleengCustomerId": sync.customer_id,
        "originalTransactionId": sync.original_transaction_id,
        "accessGranted": bool(sync.access_granted),
        "offerId": sync.offer_id,
        "result": sync.result,
    }
    return Event(Topic.SYNC_RESULT, data, sync.id)


def validation_succeeded(
    sync: Sync, subscription: Subscription, now: datetime, previous: Subscription | None
) -> Event:
    assert sync.result is not None
    data: dict[str, Any] = {
        "result": VALIDATION_RESULT[sync.result],
        "paymentGateway": PAYMENT_GATEWAY,
        "offerId": subscription.offer_id,
        "offerType": "subscription"
        if subscription.product_type == ProductType.AUTO_RENEWABLE
        else "pass",
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
    return Event(Topic.VALIDATION_SUCCEEDED, data, sync.id)


def validation_failed(sync: Sync, product_id: str | None, environment: str | None) -> Event:
    data = {
        "customerId": sync.customer_id,
        "paymentGateway": PAYMENT_GATEWAY,
        "reason": sync.result,
        "correlationId": sync.correlation_id,
        "inAppSpecificData": in_app_data(
            sync.transaction_id, sync.original_transaction_id, product_id, environment
        ),
    }
    return Event(Topic.VALIDATION_FAILED, data, sync.id)
