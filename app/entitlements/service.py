"""Entitlements and the publisher's subscriptions (docs/api.md §4), read by the access rule."""

from __future__ import annotations

from datetime import datetime

from app.db import Executor
from app.subscriptions import repository
from app.subscriptions.model import Subscription
from app.subscriptions.repository import Access, Filter


async def entitlement(
    db: Executor, publisher_id: int, customer_id: int, offer_id: str, now: datetime
) -> Access:
    return await repository.entitlement(db, publisher_id, customer_id, offer_id, now)


async def list_subscriptions(
    db: Executor, publisher_id: int, wanted: Filter, now: datetime
) -> tuple[list[Subscription], int]:
    return await repository.page(db, publisher_id, wanted, now)
