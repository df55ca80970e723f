"""Entitlement and subscription answers (docs/api.md §4, Cleeng's shapes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from app.enums import SubscriptionStatus
from app.schemas import ApiResponse


class Entitlement(ApiResponse):
    """Whether the customer may watch the offer now (Cleeng's shape)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"accessGranted": True, "expiresAt": 1795000000}]}
    )

    access_granted: bool
    expires_at: int | None = Field(
        description="When access ends, in Unix seconds; null for a lifetime purchase, or when"
        " there is no access."
    )


class SubscriptionAnswer(ApiResponse):
    """A customer's subscription to an offer, made by a sync and kept current by Apple's
    notifications."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "subscriptionId": 100000001,
                    "customerId": 123456789,
                    "offerId": "S123456789_US",
                    "status": "active",
                    "expiresAt": "2026-12-22T10:00:00Z",
                    "autoRenew": True,
                    "inTrial": False,
                    "productId": "com.acme.tv.pro.monthly",
                    "originalTransactionId": "2000000123450000",
                    "latestTransactionId": "2000000123456789",
                    "environment": "Production",
                    "createdAt": "2026-11-22T10:00:01Z",
                    "updatedAt": "2026-11-22T10:00:01Z",
                }
            ]
        }
    )

    subscription_id: int
    customer_id: int
    offer_id: str
    status: SubscriptionStatus = Field(description="`active`, `expired` or `terminated`.")
    expires_at: datetime | None = Field(description="Null for a lifetime purchase.")
    auto_renew: bool
    in_trial: bool
    product_id: str = Field(description="Apple's product id.")
    original_transaction_id: str
    latest_transaction_id: str
    environment: str = Field(description="`Production` or `Sandbox`.")
    created_at: datetime
    updated_at: datetime


class SubscriptionList(ApiResponse):
    items: list[SubscriptionAnswer]
    total: int
