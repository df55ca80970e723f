"""Entitlements and subscriptions (docs/api.md §4): thin handlers over app.entitlements.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app import errors as e
from app.admin.schemas import OFFER_ID_PATTERN
from app.admin.service import get_customer
from app.api.auth import MAX_ID, CustomerCaller, PublisherCaller
from app.api.deps import Ctx
from app.api.openapi import error_responses
from app.entitlements import service
from app.entitlements.schemas import Entitlement, SubscriptionAnswer, SubscriptionList
from app.enums import SubscriptionStatus
from app.subscriptions.access import effective_status
from app.subscriptions.model import Subscription
from app.subscriptions.repository import Access, Filter

router = APIRouter(tags=["entitlements"])

OfferIdPath = Annotated[str, Path(alias="offerId", pattern=OFFER_ID_PATTERN)]


def _entitlement(access: Access) -> Entitlement:
    expires = int(access.expires_at.timestamp()) if access.expires_at else None
    return Entitlement(access_granted=access.granted, expires_at=expires)


@router.get(
    "/entitlements/{offerId}",
    operation_id="getMyEntitlement",
    summary="The calling customer's access to an offer",
    responses=error_responses(e.InvalidPathParameters),
)
async def my_entitlement(
    offer_id: OfferIdPath, caller: CustomerCaller, context: Ctx
) -> Entitlement:
    assert caller.customer_id is not None
    access = await service.entitlement(
        context.db, caller.publisher_id, caller.customer_id, offer_id, context.clock.now()
    )
    return _entitlement(access)


@router.get(
    "/3.1/entitlements/customer_id/{customerId}/offer_id/{offerId}",
    operation_id="getCustomerEntitlement",
    summary="A customer's access to an offer",
    responses=error_responses(e.InvalidPathParameters, e.NotFound),
)
async def customer_entitlement(
    customer_id: Annotated[int, Path(alias="customerId", ge=1, le=MAX_ID)],
    offer_id: OfferIdPath,
    caller: PublisherCaller,
    context: Ctx,
) -> Entitlement:
    await get_customer(context.db, caller.publisher_id, customer_id)  # 404 unless theirs
    access = await service.entitlement(
        context.db, caller.publisher_id, customer_id, offer_id, context.clock.now()
    )
    return _entitlement(access)


def _subscription(row: Subscription, status: SubscriptionStatus) -> SubscriptionAnswer:
    assert row.id is not None
    return SubscriptionAnswer(
        subscription_id=row.id,
        customer_id=row.customer_id,
        offer_id=row.offer_id,
        status=status,
        expires_at=row.expires_at,
        auto_renew=row.auto_renew,
        in_trial=row.in_trial,
        product_id=row.product_id,
        original_transaction_id=row.original_transaction_id,
        latest_transaction_id=row.latest_transaction_id,
        environment=row.environment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "/3.1/subscriptions",
    operation_id="listSubscriptions",
    summary="The publisher's subscriptions",
    responses=error_responses(e.InvalidBody),
)
async def list_subscriptions(
    caller: PublisherCaller,
    context: Ctx,
    customer_id: Annotated[int | None, Query(alias="customerId", ge=1, le=MAX_ID)] = None,
    offer_id: Annotated[str | None, Query(alias="offerId", pattern=OFFER_ID_PATTERN)] = None,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> SubscriptionList:
    now = context.clock.now()
    wanted = Filter(customer_id, offer_id, status, offset, limit)
    rows, total = await service.list_subscriptions(context.db, caller.publisher_id, wanted, now)
    items = [_subscription(row, effective_status(row, now)) for row in rows]
    return SubscriptionList(items=items, total=total)
