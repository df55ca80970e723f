"""Webhook rules: subscriptions (SPEC §5) and the deliveries API. Services flush only."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.service import get_publisher
from app.context import Context
from app.errors import ErrorDetail, InvalidBody, NotFound, detail
from app.jobs.queue import enqueue
from app.webhooks.events import TOPICS
from app.webhooks.fanout import DELIVERY_JOB
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import DeliveryStatus, EndpointIn
from app.webhooks.targets import TargetRefused, check_target, parse_url

GENERATED_SECRET_BYTES = 24  # 32 URL-safe characters


@dataclass(frozen=True)
class SavedEndpoint:
    row: WebhookEndpoint
    generated_secret: str | None  # shown once, in the PUT answer


def new_secret() -> str:
    return secrets.token_urlsafe(GENERATED_SECRET_BYTES)


async def _refusal(index: int, url: str, allow_private: bool) -> list[ErrorDetail]:
    try:
        await check_target(parse_url(url), allow_private)
    except TargetRefused as exc:
        return detail(f"{index}.url", str(exc))
    return []


def _repeated(endpoints: list[EndpointIn]) -> list[ErrorDetail]:
    seen: set[str] = set()
    problems: list[ErrorDetail] = []
    for index, endpoint in enumerate(endpoints):
        if endpoint.url in seen:
            problems += detail(f"{index}.url", "appears more than once")
        seen.add(endpoint.url)
    return problems


async def check_endpoints(endpoints: list[EndpointIn], allow_private: bool) -> None:
    """http(s) URLs, each once, resolving to public addresses unless private ones are allowed."""
    checks = (_refusal(i, e.url, allow_private) for i, e in enumerate(endpoints))
    problems = [p for found in await asyncio.gather(*checks) for p in found]
    problems += _repeated(endpoints)
    if problems:
        raise InvalidBody(problems)


async def _upsert_endpoint(
    session: AsyncSession, values: dict[str, object], now: datetime
) -> WebhookEndpoint:
    changes = {k: values[k] for k in ("secret_encrypted", "position")}
    statement = (
        insert(WebhookEndpoint)
        .values(**values, active=True, created_at=now, updated_at=now)
        .on_conflict_do_update(
            constraint="uq_webhook_endpoints_publisher_topic_url",
            set_={**changes, "active": True, "disabled_at": None, "updated_at": now},
        )
        .returning(WebhookEndpoint)
    )
    row = await session.scalar(statement, execution_options={"populate_existing": True})
    assert row is not None
    return row


async def put_subscriptions(
    session: AsyncSession,
    context: Context,
    publisher_id: int,
    topic: str,
    endpoints: list[EndpointIn],
) -> list[SavedEndpoint]:
    """Replace the topic's endpoints. A URL already listed keeps its deliveries (and is enabled
    again); an endpoint without `verification` gets a new generated secret."""
    await check_endpoints(endpoints, context.settings.webhook_allow_private_networks)
    now, urls = context.clock.now(), [e.url for e in endpoints]
    await session.execute(
        delete(WebhookEndpoint).where(
            WebhookEndpoint.publisher_id == publisher_id,
            WebhookEndpoint.topic == topic,
            WebhookEndpoint.url.not_in(urls),
        )
    )
    saved = []
    for position, endpoint in enumerate(endpoints):
        given = endpoint.verification.options.shared_secret if endpoint.verification else None
        secret = given or new_secret()
        values: dict[str, object] = {
            "publisher_id": publisher_id,
            "topic": topic,
            "url": endpoint.url,
            "secret_encrypted": context.secrets.encrypt(secret),
            "position": position,
        }
        row = await _upsert_endpoint(session, values, now)
        saved.append(SavedEndpoint(row, None if given else secret))
    return saved


async def list_subscriptions(
    session: AsyncSession, publisher_id: int
) -> dict[str, list[WebhookEndpoint]]:
    """Every topic that has endpoints, in the order of SPEC's table, each list in PUT order."""
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.publisher_id == publisher_id)
        .order_by(WebhookEndpoint.position)
    )
    by_topic: dict[str, list[WebhookEndpoint]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(row)
    return {topic: by_topic[topic] for topic in TOPICS if topic in by_topic}


async def list_deliveries(
    session: AsyncSession,
    publisher_id: int,
    status: DeliveryStatus | None,
    topic: str | None,
    limit: int,
) -> list[WebhookDelivery]:
    """The publisher's deliveries, newest first."""
    await get_publisher(session, publisher_id)
    statement = select(WebhookDelivery).where(WebhookDelivery.publisher_id == publisher_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if topic is not None:
        statement = statement.where(WebhookDelivery.topic == topic)
    statement = statement.order_by(WebhookDelivery.id.desc()).limit(limit)
    return list(await session.scalars(statement))


async def replay_delivery(
    session: AsyncSession, context: Context, publisher_id: int, delivery_id: int
) -> WebhookDelivery:
    """Deliver again, on a fresh schedule: pending, a new round, a job due now. The attempts
    already made stay counted and recorded; a job of an earlier round becomes a no-op."""
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.publisher_id == publisher_id)
        .with_for_update()
    )
    if delivery is None:
        raise NotFound()
    now = context.clock.now()
    delivery.status, delivery.schedule_step = "pending", 0
    delivery.generation += 1
    delivery.next_attempt_at = delivery.updated_at = now
    payload = {"deliveryId": delivery.id, "generation": delivery.generation}
    await enqueue(session, DELIVERY_JOB, payload, run_at=now)
    context.wake_workers_after_commit(session)
    await session.flush()
    return delivery
