"""Entitlement and subscription answers (SPEC §4, Cleeng's shapes)."""

from __future__ import annotations

from datetime import datetime

from app.enums import SubscriptionStatus
from app.schemas import ApiResponse


class Entitlement(ApiResponse):
    access_granted: bool
    expires_at: int | None


class SubscriptionAnswer(ApiResponse):
    subscription_id: int
    customer_id: int
    offer_id: str
    status: SubscriptionStatus
    expires_at: datetime | None
    auto_renew: bool
    in_trial: bool
    product_id: str
    original_transaction_id: str
    latest_transaction_id: str
    environment: str
    created_at: datetime
    updated_at: datetime


class SubscriptionList(ApiResponse):
    items: list[SubscriptionAnswer]
    total: int
