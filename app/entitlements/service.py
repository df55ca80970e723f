"""The access rule over stored subscriptions (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Subscription
from app.webhooks.payloads import access_end, is_active


def active_clause(now: datetime) -> ColumnElement[bool]:
    """SQL for `is_active`: Apple-active, not revoked, and within expiry or grace."""
    within = or_(
        Subscription.expires_at.is_(None),
        Subscription.expires_at > now,
        and_(Subscription.apple_status == 4, Subscription.grace_expires_at > now),
    )
    return and_(Subscription.status == "active", Subscription.revoked_at.is_(None), within)


def status_clause(status: str, now: datetime) -> ColumnElement[bool]:
    if status == "active":
        return active_clause(now)
    if status == "terminated":
        return Subscription.status == "terminated"
    return and_(Subscription.status != "terminated", not_(active_clause(now)))


def effective_status(subscription: Subscription, now: datetime) -> str:
    if subscription.status == "terminated":
        return "terminated"
    return "active" if is_active(subscription, now) else "expired"


@dataclass(frozen=True)
class Access:
    granted: bool
    expires_at: datetime | None


async def entitlement(
    session: AsyncSession, publisher_id: int, customer_id: int, offer_id: str, now: datetime
) -> Access:
    rows = await session.scalars(
        select(Subscription).where(
            Subscription.publisher_id == publisher_id,
            Subscription.customer_id == customer_id,
            Subscription.offer_id == offer_id,
            active_clause(now),
        )
    )
    active = list(rows)
    if not active:
        return Access(False, None)
    ends = [access_end(s) for s in active]
    if any(end is None for end in ends):
        return Access(True, None)
    return Access(True, max(end for end in ends if end is not None))


@dataclass(frozen=True)
class SubscriptionFilter:
    customer_id: int | None = None
    offer_id: str | None = None
    status: str | None = None
    offset: int = 0
    limit: int = 50


async def list_subscriptions(
    session: AsyncSession, publisher_id: int, wanted: SubscriptionFilter, now: datetime
) -> tuple[list[Subscription], int]:
    conditions: list[ColumnElement[bool]] = [Subscription.publisher_id == publisher_id]
    if wanted.customer_id is not None:
        conditions.append(Subscription.customer_id == wanted.customer_id)
    if wanted.offer_id is not None:
        conditions.append(Subscription.offer_id == wanted.offer_id)
    if wanted.status is not None:
        conditions.append(status_clause(wanted.status, now))
    total = await session.scalar(select(func.count()).select_from(Subscription).where(*conditions))
    rows = await session.scalars(
        select(Subscription)
        .where(*conditions)
        .order_by(Subscription.id)
        .offset(wanted.offset)
        .limit(wanted.limit)
    )
    return list(rows), int(total or 0)
