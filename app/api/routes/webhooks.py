"""Webhook subscriptions and the deliveries API (docs/api.md §5): thin handlers over the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Path, Query, Response, status

from app.api.auth import MAX_ID, PublisherAccess, PublisherCaller, PublisherIdPath
from app.api.deps import Ctx, Tx
from app.api.openapi import error_responses
from app.db import Row
from app.enums import DeliveryStatus
from app.errors import InvalidBody, InvalidPathParameters, NotFound
from app.webhooks import service
from app.webhooks.schemas import (
    MAX_ENDPOINTS_PER_TOPIC,
    TOPIC_PATTERN,
    DeliveryItem,
    DeliveryList,
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


def _endpoint_out(row: Row, secret: str | None = None) -> EndpointOut:
    options = HmacOptionsOut(shared_secret=secret)
    return EndpointOut(
        url=row["url"], verification=VerificationOut(options=options), active=row["active"]
    )


def _delivery_item(row: Row) -> DeliveryItem:
    return DeliveryItem(
        delivery_id=row["id"],
        webhook_id=row["webhook_id"],
        topic=row["topic"],
        url=row["url"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
    )


@router.put(
    "/{topic}",
    operation_id="putWebhookSubscriptions",
    response_model_exclude_none=True,
    responses=error_responses(InvalidBody, InvalidPathParameters),
)
async def put_subscriptions(
    topic: TopicPath,
    body: EndpointsBody,
    caller: PublisherCaller,
    context: Ctx,
    tx: Tx,
    response: Response,
) -> list[EndpointOut]:
    c, now = context, context.clock.now()
    saved = await service.put_subscriptions(
        tx, c.webhooks.guard, c.secrets, caller.publisher_id, topic, body, now
    )
    response.headers["Cache-Control"] = "no-store"  # a generated secret is shown here, once
    return [_endpoint_out(s.row, s.generated_secret) for s in saved]


@router.get(
    "",
    operation_id="listWebhookSubscriptions",
    response_model_exclude_none=True,
    responses=error_responses(),
)
async def list_subscriptions(caller: PublisherCaller, context: Ctx) -> dict[str, list[EndpointOut]]:
    topics = await service.list_subscriptions(context.db, caller.publisher_id)
    return {topic: [_endpoint_out(row) for row in rows] for topic, rows in topics.items()}


@deliveries_router.get(
    "",
    operation_id="listWebhookDeliveries",
    responses=error_responses(InvalidBody, InvalidPathParameters, NotFound),
)
async def list_deliveries(
    publisher_id: PublisherIdPath,
    _: PublisherAccess,
    context: Ctx,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    topic: Annotated[str | None, Query(pattern=TOPIC_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> DeliveryList:
    rows = await service.list_deliveries(context.db, publisher_id, status_filter, topic, limit)
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
    context: Ctx,
    tx: Tx,
    after: BackgroundTasks,
) -> DeliveryItem:
    row = await service.replay_delivery(tx, publisher_id, delivery_id, context.clock.now())
    after.add_task(context.waker.poke)  # after the commit, which comes before the answer
    return _delivery_item(row)
