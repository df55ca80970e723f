"""Webhook subscriptions and the deliveries API (SPEC §5): thin handlers over the service."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Body, Path, Query, status

from app.auth import MAX_ID, PublisherAccess, PublisherCaller, PublisherIdPath
from app.deps import Ctx, Session
from app.errors import InvalidBody, InvalidPathParameters, NotFound
from app.openapi import error_responses
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    MAX_ENDPOINTS_PER_TOPIC,
    TOPIC_PATTERN,
    DeliveryItem,
    DeliveryList,
    DeliveryStatus,
    EndpointIn,
    EndpointOut,
    HmacOptionsOut,
    VerificationOut,
)

router = APIRouter(prefix="/3.1/webhook_subscriptions", tags=["webhooks"])
deliveries_router = APIRouter(
    prefix="/admin/publishers/{publisherId}/webhook-deliveries", tags=["webhooks"]
)

TopicPath = Annotated[str, Path(alias="topic", pattern=TOPIC_PATTERN)]
DeliveryIdPath = Annotated[int, Path(alias="deliveryId", ge=1, le=MAX_ID)]
EndpointsBody = Annotated[list[EndpointIn], Body(max_length=MAX_ENDPOINTS_PER_TOPIC)]


def _endpoint_out(row: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
    options = HmacOptionsOut(shared_secret=secret)
    return EndpointOut(
        url=row.url, verification=VerificationOut(options=options), active=row.active
    )


def _delivery_item(row: WebhookDelivery) -> DeliveryItem:
    return DeliveryItem(
        delivery_id=row.id,
        webhook_id=row.webhook_id,
        topic=row.topic,
        url=row.url,
        status=cast(DeliveryStatus, row.status),
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
    )


@router.put(
    "/{topic}",
    operation_id="putWebhookSubscriptions",
    response_model_exclude_none=True,
    responses=error_responses(InvalidBody, InvalidPathParameters),
)
async def put_subscriptions(
    topic: TopicPath, body: EndpointsBody, caller: PublisherCaller, session: Session, context: Ctx
) -> list[EndpointOut]:
    assert caller.publisher_id is not None
    saved = await service.put_subscriptions(session, context, caller.publisher_id, topic, body)
    return [_endpoint_out(s.row, s.generated_secret) for s in saved]


@router.get(
    "",
    operation_id="listWebhookSubscriptions",
    response_model_exclude_none=True,
    responses=error_responses(),
)
async def list_subscriptions(
    caller: PublisherCaller, session: Session
) -> dict[str, list[EndpointOut]]:
    assert caller.publisher_id is not None
    topics = await service.list_subscriptions(session, caller.publisher_id)
    return {topic: [_endpoint_out(row) for row in rows] for topic, rows in topics.items()}


@deliveries_router.get(
    "",
    operation_id="listWebhookDeliveries",
    responses=error_responses(InvalidBody, InvalidPathParameters, NotFound),
)
async def list_deliveries(
    publisher_id: PublisherIdPath,
    _: PublisherAccess,
    session: Session,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    topic: Annotated[str | None, Query(pattern=TOPIC_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> DeliveryList:
    rows = await service.list_deliveries(session, publisher_id, status_filter, topic, limit)
    return DeliveryList(items=[_delivery_item(row) for row in rows])


@deliveries_router.post(
    "/{deliveryId}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="replayWebhookDelivery",
    responses=error_responses(InvalidPathParameters, NotFound),
)
async def replay_delivery(
    publisher_id: PublisherIdPath,
    delivery_id: DeliveryIdPath,
    _: PublisherAccess,
    session: Session,
    context: Ctx,
) -> DeliveryItem:
    row = await service.replay_delivery(session, context, publisher_id, delivery_id)
    return _delivery_item(row)
