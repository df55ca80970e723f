"""From one event to its deliveries: one per active endpoint of the topic, each with its job.

One statement writes the event, its deliveries and their jobs, in the transaction that caused
the event, so they exist together or not at all (DESIGN decision 6).

A caller that will send the deliveries itself right after its commit (the sync job does, so a
sync's webhooks leave without a trip through the queue) asks for them to be *held*: their jobs
are written already leased to it, so no worker takes them meanwhile; if the caller dies, the lease
runs out and a worker sends them as usual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

DELIVERY_JOB = "webhook_delivery"
HOLD = "webhooks.hold"
HELD = "webhooks.held"

EMIT = text(
    """
    WITH event AS (
        INSERT INTO webhook_events (publisher_id, topic, payload, synchronization_id, created_at)
        VALUES (:publisher_id, :topic, :payload, :synchronization_id, :now)
        RETURNING id
    ), delivery AS (
        INSERT INTO webhook_deliveries (publisher_id, event_id, endpoint_id, topic, url,
            webhook_id, status, attempts, generation, schedule_step, next_attempt_at,
            created_at, updated_at)
        SELECT :publisher_id, event.id, endpoint.id, :topic, endpoint.url,
            'msg_' || replace(gen_random_uuid()::text, '-', ''), 'pending', 0, 0, 0, :now,
            :now, :now
        FROM event, webhook_endpoints AS endpoint
        WHERE endpoint.publisher_id = :publisher_id AND endpoint.topic = :topic
            AND endpoint.active
        ORDER BY endpoint.position
        RETURNING id, endpoint_id, url, webhook_id
    ), job AS (
        INSERT INTO jobs (kind, payload, run_at, attempts, locked_by, locked_until, created_at)
        SELECT :kind, jsonb_build_object('deliveryId', delivery.id), :now, :attempts,
            :holder, :held_until, :now
        FROM delivery
        ORDER BY delivery.id
        RETURNING id, (payload ->> 'deliveryId')::bigint AS delivery_id
    )
    SELECT event.id AS event_id, job.id AS job_id, delivery.id AS delivery_id,
        delivery.endpoint_id, delivery.url, delivery.webhook_id, endpoint.secret_encrypted
    FROM event LEFT JOIN (
        job JOIN delivery ON delivery.id = job.delivery_id
        JOIN webhook_endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
    ) ON true
    ORDER BY delivery.id
    """
).bindparams(bindparam("payload", type_=JSONB))


@dataclass(frozen=True)
class HeldDelivery:
    """A delivery whose job is leased to the caller, with what it takes to send it."""

    job_id: int
    delivery_id: int
    endpoint_id: int
    publisher_id: int
    topic: str
    url: str
    webhook_id: str
    secret_encrypted: bytes
    data: dict[str, Any]


def hold_deliveries(session: AsyncSession, holder: str, until: datetime) -> None:
    """Lease the jobs of every delivery this session writes to `holder` until `until`."""
    session.info[HOLD] = (holder, until)


def held_deliveries(session: AsyncSession) -> list[HeldDelivery]:
    """The deliveries written under `hold_deliveries`, in the order they were written."""
    return list(session.info.get(HELD, []))


async def fan_out_event(
    session: AsyncSession,
    publisher_id: int,
    topic: str,
    data: dict[str, Any],
    now: datetime,
    synchronization_id: str | None,
) -> int:
    """Write the event, its deliveries and their jobs; return the event's id.

    Waking the workers for jobs that are not held is the caller's
    (`context.wake_workers_after_commit(session)`); otherwise they wait for the next poll."""
    holder, until = session.info.get(HOLD, (None, None))
    rows = (
        await session.execute(
            EMIT,
            {
                "publisher_id": publisher_id,
                "topic": topic,
                "payload": data,
                "synchronization_id": synchronization_id,
                "now": now,
                "kind": DELIVERY_JOB,
                "attempts": 0 if holder is None else 1,
                "holder": holder,
                "held_until": until,
            },
        )
    ).all()
    if holder is not None:
        held = session.info.setdefault(HELD, [])
        for row in rows:
            if row.job_id is not None:
                held.append(_held(row, publisher_id, topic, data))
    return int(rows[0].event_id)


def _held(row: Any, publisher_id: int, topic: str, data: dict[str, Any]) -> HeldDelivery:
    """From a row of EMIT (SQLAlchemy's) or of EMIT_HELD (asyncpg's)."""
    values = row if isinstance(row, asyncpg.Record) else row._mapping
    return HeldDelivery(
        job_id=int(values["job_id"]),
        delivery_id=int(values["delivery_id"]),
        endpoint_id=int(values["endpoint_id"]),
        publisher_id=publisher_id,
        topic=topic,
        url=str(values["url"]),
        webhook_id=str(values["webhook_id"]),
        secret_encrypted=bytes(values["secret_encrypted"]),
        data=data,
    )


# Several events of one cause, written in the order given, with their deliveries and their jobs,
# all held. On asyncpg: the sync's finalize runs there (app.purchases.finalizing). The events
# take their ids in the order of the input (INSERT … SELECT … ORDER BY), so the deliveries of an
# earlier event have lower ids and leave first at each endpoint.
EMIT_HELD = """
WITH input AS (
    SELECT topic, payload, position
    FROM unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS i (topic, payload, position)
), event AS (
    INSERT INTO webhook_events (publisher_id, topic, payload, synchronization_id, created_at)
    SELECT $1, topic, payload, $4, $5 FROM input ORDER BY position
    RETURNING id, topic
), delivery AS (
    INSERT INTO webhook_deliveries (publisher_id, event_id, endpoint_id, topic, url,
        webhook_id, status, attempts, generation, schedule_step, next_attempt_at,
        created_at, updated_at)
    SELECT $1, event.id, endpoint.id, event.topic, endpoint.url,
        'msg_' || replace(gen_random_uuid()::text, '-', ''), 'pending', 0, 0, 0, $5, $5, $5
    FROM event JOIN webhook_endpoints AS endpoint
        ON endpoint.publisher_id = $1 AND endpoint.topic = event.topic AND endpoint.active
    ORDER BY event.id, endpoint.position
    RETURNING id, event_id, endpoint_id, url, webhook_id
), job AS (
    INSERT INTO jobs (kind, payload, run_at, attempts, locked_by, locked_until, created_at)
    SELECT $6, jsonb_build_object('deliveryId', delivery.id), $5, 1, $7, $8, $5
    FROM delivery
    ORDER BY delivery.id
    RETURNING id, (payload ->> 'deliveryId')::bigint AS delivery_id
)
SELECT event.id AS event_id, event.topic, job.id AS job_id, delivery.id AS delivery_id,
    delivery.endpoint_id, delivery.url, delivery.webhook_id, endpoint.secret_encrypted
FROM event LEFT JOIN (
    job JOIN delivery ON delivery.id = job.delivery_id
    JOIN webhook_endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
) ON delivery.event_id = event.id
ORDER BY event.id, delivery.id
"""


async def emit_held(
    connection: asyncpg.Connection,
    publisher_id: int,
    events: list[tuple[str, dict[str, Any]]],
    synchronization_id: str | None,
    now: datetime,
    lease: tuple[str, datetime],
) -> list[HeldDelivery]:
    """Write `events` (topic, data) in one statement, in the caller's transaction, their
    deliveries' jobs leased to `lease` (holder, until); return those deliveries, in order."""
    if not events:
        return []
    topics = [topic for topic, _ in events]
    payloads = [json.dumps(data) for _, data in events]
    holder, until = lease
    rows = await connection.fetch(
        EMIT_HELD,
        publisher_id,
        topics,
        payloads,
        synchronization_id,
        now,
        DELIVERY_JOB,
        holder,
        until,
    )
    written: dict[int, str] = {}  # event id: topic, in the order of the ids
    for row in rows:
        written.setdefault(row["event_id"], row["topic"])
    if list(written.values()) != topics:  # every event, in the order given
        raise RuntimeError(f"events written as {list(written.values())}, not {topics}")
    data_of = dict(zip(written, (data for _, data in events), strict=True))
    return [
        _held(row, publisher_id, row["topic"], data_of[row["event_id"]])
        for row in rows
        if row["job_id"] is not None
    ]


def lease_for(now: datetime, webhook_timeout: float) -> datetime:
    """How long a held delivery's job stays leased: its whole attempt, and then some."""
    return now + timedelta(seconds=webhook_timeout + 30.0)
