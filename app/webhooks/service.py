"""Webhook subscriptions (docs/api.md §5) and the deliveries API."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime

from app.db import Executor, Row
from app.enums import DeliveryStatus, Topic
from app.errors import ErrorDetail, InvalidBody, NotFound, detail
from app.security import SecretBox
from app.webhooks import repository
from app.webhooks.repository import NewEndpoint
from app.webhooks.schemas import EndpointIn
from app.webhooks.targets import TargetGuard, TargetRefused, parse_url

GENERATED_SECRET_BYTES = 24  # 32 URL-safe characters


@dataclass(frozen=True)
class SavedEndpoint:
    row: Row
    generated_secret: str | None  # shown once, in the PUT answer


def new_secret() -> str:
    return secrets.token_urlsafe(GENERATED_SECRET_BYTES)


async def _refusal(index: int, url: str, guard: TargetGuard) -> list[ErrorDetail]:
    try:
        await guard.check(parse_url(url))
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


async def check_endpoints(endpoints: list[EndpointIn], guard: TargetGuard) -> None:
    """http(s) URLs, each once, resolving to public addresses unless private ones are allowed
    (looked up as deliveries look them up: `guard`, the webhook sender's)."""
    checks = (_refusal(i, e.url, guard) for i, e in enumerate(endpoints))
    problems = [p for found in await asyncio.gather(*checks) for p in found]
    problems += _repeated(endpoints)
    if problems:
        raise InvalidBody(problems)


def _seal(box: SecretBox, publisher_id: int, topic: str, url: str, secret: str) -> bytes:
    bound_to = repository.secret_binding(publisher_id, topic, url)
    return box.seal(secret, purpose=repository.SECRET_PURPOSE, bound_to=bound_to)


async def put_subscriptions(
    tx: Executor,
    guard: TargetGuard,
    box: SecretBox,
    publisher_id: int,
    topic: str,
    endpoints: list[EndpointIn],
    now: datetime,
) -> list[SavedEndpoint]:
    """Replace the topic's endpoints. A URL already listed keeps its deliveries (and is enabled
    again); an endpoint without `verification` gets a new generated secret."""
    await check_endpoints(endpoints, guard)
    given = [e.verification.options.shared_secret if e.verification else None for e in endpoints]
    plain = [secret or new_secret() for secret in given]
    new = [
        NewEndpoint(e.url, _seal(box, publisher_id, topic, e.url, secret))
        for e, secret in zip(endpoints, plain, strict=True)
    ]
    rows = await repository.replace_endpoints(tx, publisher_id, topic, new, now)
    return [
        SavedEndpoint(row, None if was_given else secret)
        for row, was_given, secret in zip(rows, given, plain, strict=True)
    ]


async def list_subscriptions(db: Executor, publisher_id: int) -> dict[str, list[Row]]:
    """Every topic that has endpoints, in the order of docs/api.md's table, each list in PUT order."""
    by_topic: dict[str, list[Row]] = {}
    for row in await repository.endpoints(db, publisher_id):
        by_topic.setdefault(row["topic"], []).append(row)
    return {topic: by_topic[topic] for topic in Topic if topic in by_topic}


async def list_deliveries(
    db: Executor,
    publisher_id: int,
    status: DeliveryStatus | None,
    topic: str | None,
    limit: int,
) -> list[Row]:
    """The publisher's deliveries, newest first."""
    return await repository.deliveries(db, publisher_id, status, topic, limit)


async def replay_delivery(db: Executor, publisher_id: int, delivery_id: int, now: datetime) -> Row:
    """Deliver again, on a fresh schedule: pending, a new round, a job due now. The attempts
    already made stay counted and recorded; a job of an earlier round becomes a no-op."""
    row = await repository.replay(db, publisher_id, delivery_id, now)
    if row is None:
        raise NotFound(
            message=f"Entity not found: webhook delivery {delivery_id} of this publisher"
        )
    return row
