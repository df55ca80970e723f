"""The webhook tables (`webhook_endpoints`, `webhook_events`, `webhook_deliveries`,
`webhook_delivery_attempts`): their one writer and their readers.

An event, its deliveries (one per active endpoint of its topic) and their jobs are written by one
statement, `WRITE_EVENTS`, in the transaction that caused the event (docs/design.md, decision 6). A delivery's
attempt, its outcome and its job are concluded by one statement, `CONCLUDE`, for a success and a
failure alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db import Executor, Row
from app.enums import DeliveryStatus, JobKind
from app.jobs.queue import DELETE_JOB, RESCHEDULE_JOB, insert_jobs, parse_count
from app.security import Purpose, row_binding

SECRET_PURPOSE: Purpose = "webhook-secret"  # noqa: S105 (a name)


def secret_binding(publisher_id: int, topic: str, url: str) -> str:
    """What an endpoint's sealed secret is bound to: its row's key (publisher, topic, URL), so a
    ciphertext copied to another endpoint does not open there."""
    return row_binding("webhook_endpoints", publisher_id, topic, url)


_PENDING = f"'{DeliveryStatus.PENDING}'"

# Several events of one cause, in the order given, with their deliveries and their jobs. $1
# publisher, $2 topics, $3 payloads, $4 synchronization ids, $5 now, $6 the job kind, $7 the
# holder of the jobs (NULL: any worker) and $8 until when. The events take their ids in the order of
# the input (INSERT … SELECT … ORDER BY), and so do their deliveries (ids drawn in event, then
# endpoint order). The deliveries to one URL form a chain (docs/api.md §5's order): each but the first
# waits for the first attempt of the one before it (`after_delivery_id`), and has no job yet.
WRITE_EVENTS = f"""
WITH input AS (
    SELECT topic, payload, synchronization_id, position
    FROM unnest($2::text[], $3::jsonb[], $4::text[]) WITH ORDINALITY
        AS i (topic, payload, synchronization_id, position)
), event AS (
    INSERT INTO webhook_events (publisher_id, topic, payload, synchronization_id, created_at)
    SELECT $1, topic, payload, synchronization_id, $5 FROM input ORDER BY position
    RETURNING id, topic
), planned AS (
    SELECT nextval(pg_get_serial_sequence('webhook_deliveries', 'id')) AS id, ordered.*
    FROM (
        SELECT event.id AS event_id, endpoint.id AS endpoint_id, event.topic, endpoint.url
        FROM event JOIN webhook_endpoints AS endpoint
            ON endpoint.publisher_id = $1 AND endpoint.topic = event.topic AND endpoint.active
        ORDER BY event.id, endpoint.position
    ) AS ordered
), chained AS (
    SELECT planned.*, lag(id) OVER (PARTITION BY url ORDER BY id) AS after_delivery_id
    FROM planned
), delivery AS (
    INSERT INTO webhook_deliveries (id, publisher_id, event_id, endpoint_id, topic, url,
        webhook_id, status, attempts, generation, schedule_step, next_attempt_at,
        after_delivery_id, created_at, updated_at)
    SELECT id, $1, event_id, endpoint_id, topic, url,
        'msg_' || replace(gen_random_uuid()::text, '-', ''), {_PENDING}, 0, 0, 0, $5,
        after_delivery_id, $5, $5
    FROM chained
    ORDER BY id
    RETURNING id, event_id, endpoint_id, url, webhook_id, after_delivery_id
), job AS (
    {
    insert_jobs(
        "delivery WHERE after_delivery_id IS NULL",
        kind="$6",
        payload="jsonb_build_object('deliveryId', delivery.id)",
        run_at="$5",
        attempts="CASE WHEN $7::text IS NULL THEN 0 ELSE 1 END",
        holder="$7",
        held_until="$8",
        order_by="delivery.id",
    )
}
    RETURNING id, (payload ->> 'deliveryId')::bigint AS delivery_id
)
SELECT event.id AS event_id, event.topic, job.id AS job_id, delivery.id AS delivery_id,
    delivery.endpoint_id, delivery.url, delivery.webhook_id, endpoint.secret_encrypted
FROM event LEFT JOIN (
    delivery LEFT JOIN job ON job.delivery_id = delivery.id
    JOIN webhook_endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
) ON delivery.event_id = event.id
ORDER BY event.id, delivery.id
"""  # noqa: S608 (constants of this module and of the queue's)


@dataclass(frozen=True)
class WrittenDelivery:
    """A delivery just written, with what it takes to send it without reading it again; its job
    (None while it waits for the one before it to the same URL)."""

    job_id: int | None
    delivery_id: int
    endpoint_id: int
    topic: str
    url: str
    webhook_id: str
    secret_encrypted: bytes
    event_index: int  # which of the events written


async def write_events(
    db: Executor,
    publisher_id: int,
    events: list[tuple[str, dict[str, Any], str | None]],
    now: datetime,
    hold: tuple[str, datetime] | None,
) -> list[WrittenDelivery]:
    """Write `events` (topic, data, synchronization id) with their deliveries and the jobs of the
    first delivery to each URL, leased to `hold` (holder, until) when given; return every
    delivery, in order."""
    holder, until = hold if hold is not None else (None, None)
    rows = await db.fetch(
        WRITE_EVENTS,
        publisher_id,
        [topic for topic, _, _ in events],
        [json.dumps(data) for _, data, _ in events],
        [sync_id for _, _, sync_id in events],
        now,
        JobKind.WEBHOOK_DELIVERY,
        holder,
        until,
    )
    order = _event_order(rows, [topic for topic, _, _ in events])
    return [_written(row, order[row["event_id"]]) for row in rows if row["delivery_id"]]


def _event_order(rows: Sequence[Row], topics: list[str]) -> dict[int, int]:
    """Each event id's place among the events given, checked against their topics."""
    written: dict[int, str] = {}  # event id: topic, in the order of the ids
    for row in rows:
        written.setdefault(row["event_id"], row["topic"])
    if list(written.values()) != topics:  # every event, in the order given
        raise RuntimeError(f"events written as {list(written.values())}, not {topics}")
    return {event_id: index for index, event_id in enumerate(written)}


def _written(row: Row, index: int) -> WrittenDelivery:
    return WrittenDelivery(
        job_id=None if row["job_id"] is None else int(row["job_id"]),
        delivery_id=int(row["delivery_id"]),
        endpoint_id=int(row["endpoint_id"]),
        topic=str(row["topic"]),
        url=str(row["url"]),
        webhook_id=str(row["webhook_id"]),
        secret_encrypted=bytes(row["secret_encrypted"]),
        event_index=index,
    )


# The next delivery of a chain may go: it stops waiting and gets its job (leased to $h, until $u,
# when given). `{after}` is the delivery whose first attempt it waited for; `{when}` a condition.
def _release(after: str, when: str, run_at: str, holder: str, until: str) -> str:
    job = insert_jobs(
        "released",
        kind=f"'{JobKind.WEBHOOK_DELIVERY}'",
        payload="jsonb_build_object('deliveryId', released.id)",
        run_at=run_at,
        attempts=f"CASE WHEN {holder}::text IS NULL THEN 0 ELSE 1 END",
        holder=holder,
        held_until=until,
    )
    return f"""released AS (
    UPDATE webhook_deliveries SET after_delivery_id = NULL
    WHERE after_delivery_id = {after} AND {when}
    RETURNING id
), next_job AS (
    {job}
    RETURNING id
)"""  # noqa: S608


TO_SEND = """
SELECT d.status, d.generation, d.schedule_step, d.publisher_id, d.topic, d.url, d.webhook_id,
    d.endpoint_id, endpoint.active AS endpoint_active, endpoint.secret_encrypted, event.payload
FROM webhook_deliveries AS d
JOIN webhook_events AS event ON event.id = d.event_id
LEFT JOIN webhook_endpoints AS endpoint ON endpoint.id = d.endpoint_id
WHERE d.id = $1
"""


@dataclass(frozen=True)
class ToSend:
    """A delivery as its job finds it: its round, and what to send (if its endpoint remains)."""

    status: DeliveryStatus
    generation: int
    schedule_step: int
    publisher_id: int
    topic: str
    url: str
    webhook_id: str
    endpoint: bool | None  # None: removed; False: disabled
    secret_encrypted: bytes | None
    data: dict[str, Any]


async def to_send(db: Executor, delivery_id: int) -> ToSend | None:
    row = await db.fetchrow(TO_SEND, delivery_id)
    if row is None:
        return None
    return ToSend(
        status=DeliveryStatus(row["status"]),
        generation=row["generation"],
        schedule_step=row["schedule_step"],
        publisher_id=row["publisher_id"],
        topic=row["topic"],
        url=row["url"],
        webhook_id=row["webhook_id"],
        endpoint=row["endpoint_active"],
        secret_encrypted=row["secret_encrypted"],
        data=json.loads(row["payload"]),
    )


# A job with nothing to send (its delivery settled, replayed since, or its endpoint gone): done,
# and the next delivery of its chain may go. With $3 (why), a round still pending ends failed
# first: sent to no endpoint (removed or disabled). $1 delivery, $2 job, $4 now.
PASS_ON = f"""
WITH settled AS (
    UPDATE webhook_deliveries SET status = '{DeliveryStatus.FAILED}', next_attempt_at = NULL,
        last_error = $3, updated_at = $4
    WHERE id = $1 AND status = {_PENDING} AND $3::text IS NOT NULL
), {_release("$1", "true", "$4", "NULL", "NULL")}, done AS (
    {DELETE_JOB.format(job="$2")}
)
SELECT count(*) AS released FROM next_job
"""  # noqa: S608


async def pass_on(
    db: Executor, delivery_id: int, job_id: int, why: str | None, now: datetime
) -> bool:
    """Complete a job that sends nothing; True when the next delivery of its chain got a job."""
    return bool(await db.fetchval(PASS_ON, delivery_id, job_id, why, now))


# One attempt concluded: recorded, the round settled (unless a replay or another outcome settled it
# meanwhile: then only recorded), the job rescheduled for the next try or done, and, after the
# delivery's first attempt, the next delivery of its chain released (its job leased to $11 until
# $12 when given: the sender goes on with it). $1 delivery, $2 generation, $3 job, $4 status
# code, $5 error, $6 duration, $7 started at, $8 now, $9 the round's status after it, $10 the
# next try (when still pending). Answers the released delivery and its job, if any.
CONCLUDE = f"""
WITH current AS (
    SELECT status = {_PENDING} AND generation = $2 AS this_round, attempts = 0 AS first
    FROM webhook_deliveries WHERE id = $1 FOR UPDATE
), delivery AS (
    UPDATE webhook_deliveries SET
        attempts = attempts + 1,
        last_status_code = $4,
        last_error = $5,
        schedule_step = schedule_step + CASE WHEN this_round THEN 1 ELSE 0 END,
        status = CASE WHEN this_round THEN $9::text ELSE status END,
        next_attempt_at = CASE WHEN this_round THEN $10::timestamptz ELSE next_attempt_at END,
        updated_at = CASE WHEN this_round THEN $8::timestamptz ELSE updated_at END
    FROM current
    WHERE id = $1
    RETURNING id, this_round, first
), attempt AS (
    INSERT INTO webhook_delivery_attempts
        (delivery_id, attempted_at, status_code, error, duration_ms)
    SELECT id, $7, $4, $5, $6 FROM delivery
), again AS (
    {RESCHEDULE_JOB.format(job="$3", run_at="$10", error="$5")}
        AND $10::timestamptz IS NOT NULL AND EXISTS (SELECT 1 FROM delivery WHERE this_round)
    RETURNING id
), {_release("$1", "EXISTS (SELECT 1 FROM delivery WHERE first)", "$8", "$11", "$12")}, done AS (
    {DELETE_JOB.format(job="$3")} AND NOT EXISTS (SELECT 1 FROM again)
)
SELECT (SELECT id FROM released) AS delivery_id, (SELECT id FROM next_job) AS job_id
"""  # noqa: S608


@dataclass(frozen=True)
class Outcome:
    """One attempt, and where it leaves the delivery's round."""

    delivery_id: int
    generation: int
    job_id: int
    status_code: int | None
    error: str | None
    duration_ms: int
    started_at: datetime
    status: DeliveryStatus
    next_attempt_at: datetime | None


async def conclude(
    db: Executor, outcome: Outcome, now: datetime, hold: tuple[str, datetime] | None = None
) -> int | None:
    """Record and settle the attempt; return the job of the chain's next delivery when this was
    the delivery's first attempt and one waited for it (leased to `hold` when given)."""
    o = outcome
    holder, until = hold if hold is not None else (None, None)
    row = await db.fetchrow(
        CONCLUDE,
        o.delivery_id,
        o.generation,
        o.job_id,
        o.status_code,
        o.error,
        o.duration_ms,
        o.started_at,
        now,
        o.status,
        o.next_attempt_at,
        holder,
        until,
    )
    return None if row is None or row["job_id"] is None else int(row["job_id"])


# 410 Gone: the endpoint is disabled, and its other pending deliveries fail now.
DISABLE_ENDPOINT = f"""
WITH endpoint AS (
    UPDATE webhook_endpoints SET active = false, disabled_at = $3, updated_at = $3
    WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = $1)
    RETURNING id
)
UPDATE webhook_deliveries SET status = '{DeliveryStatus.FAILED}', next_attempt_at = NULL,
    last_error = $2, updated_at = $3
WHERE endpoint_id = (SELECT id FROM endpoint) AND status = {_PENDING} AND id <> $1
"""  # noqa: S608


async def disable_endpoint_of(db: Executor, delivery_id: int, why: str, now: datetime) -> None:
    await db.execute(DISABLE_ENDPOINT, delivery_id, why, now)


# Deliver again, on a fresh schedule: pending, a new round, a job due now. $1 delivery,
# $2 publisher, $3 now.
REPLAY = f"""
WITH delivery AS (
    UPDATE webhook_deliveries SET status = {_PENDING}, schedule_step = 0,
        generation = generation + 1, next_attempt_at = $3, updated_at = $3,
        after_delivery_id = NULL
    WHERE id = $1 AND publisher_id = $2
    RETURNING *
), job AS (
    {
    insert_jobs(
        "delivery",
        kind=f"'{JobKind.WEBHOOK_DELIVERY}'",
        payload="jsonb_build_object('deliveryId', id, 'generation', generation)",
        run_at="$3",
    )
}
)
SELECT * FROM delivery
"""  # noqa: S608

DELIVERY_COLUMNS = (
    "id, webhook_id, topic, url, status, attempts, last_status_code, last_error,"
    " next_attempt_at, created_at"
)


async def replay(db: Executor, publisher_id: int, delivery_id: int, now: datetime) -> Row | None:
    return await db.fetchrow(REPLAY, delivery_id, publisher_id, now)


async def deliveries(
    db: Executor, publisher_id: int, status: str | None, topic: str | None, limit: int
) -> list[Row]:
    """The publisher's deliveries, newest first."""
    statement = f"""
    SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
    WHERE publisher_id = $1 AND ($2::text IS NULL OR status = $2)
        AND ($3::text IS NULL OR topic = $3)
    ORDER BY id DESC LIMIT $4
    """  # noqa: S608
    return list(await db.fetch(statement, publisher_id, status, topic, limit))


# For /metrics: the deliveries not settled as succeeded, by status, read from their partial index
# (`ix_webhook_deliveries_unsettled`): the succeeded ones, nearly all of an ever-growing table, are
# never counted (the attempts counter has every outcome).
COUNT_UNSETTLED = f"""
SELECT status, count(*) AS n FROM webhook_deliveries
WHERE status <> '{DeliveryStatus.SUCCEEDED}' GROUP BY status
"""  # noqa: S608 (a constant)


async def count_unsettled(db: Executor) -> dict[str, int]:
    """Pending and failed deliveries (both, zero when there are none)."""
    counts = {DeliveryStatus.PENDING.value: 0, DeliveryStatus.FAILED.value: 0}
    for row in await db.fetch(COUNT_UNSETTLED):
        counts[str(row["status"])] = int(row["n"])
    return counts


ENDPOINT_COLUMNS = "id, topic, url, active, position"

DROP_OTHER_ENDPOINTS = """
DELETE FROM webhook_endpoints WHERE publisher_id = $1 AND topic = $2 AND url <> ALL($3::text[])
"""

UPSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoints (publisher_id, topic, url, secret_encrypted, position, active,
    created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, true, $6, $6)
ON CONFLICT ON CONSTRAINT uq_webhook_endpoints_publisher_topic_url DO UPDATE SET
    secret_encrypted = excluded.secret_encrypted, position = excluded.position, active = true,
    disabled_at = NULL, updated_at = excluded.updated_at
RETURNING {ENDPOINT_COLUMNS}
"""  # noqa: S608


@dataclass(frozen=True)
class NewEndpoint:
    url: str
    secret_encrypted: bytes


async def replace_endpoints(
    db: Executor, publisher_id: int, topic: str, endpoints: list[NewEndpoint], now: datetime
) -> list[Row]:
    """The topic's endpoints become `endpoints`, in that order. A URL already listed keeps its
    deliveries (and is enabled again)."""
    await db.execute(DROP_OTHER_ENDPOINTS, publisher_id, topic, [e.url for e in endpoints])
    saved = []
    for position, endpoint in enumerate(endpoints):
        values = (endpoint.url, endpoint.secret_encrypted, position, now)
        row = await db.fetchrow(UPSERT_ENDPOINT, publisher_id, topic, *values)
        assert row is not None
        saved.append(row)
    return saved


LIST_ENDPOINTS = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE publisher_id = $1 ORDER BY position, id
"""  # noqa: S608


async def endpoints(db: Executor, publisher_id: int) -> list[Row]:
    return list(await db.fetch(LIST_ENDPOINTS, publisher_id))


# Retention: settled deliveries (with their attempts, by cascade) older than a cutoff, oldest first
# by id, a batch at a time; then the events left with no delivery.
PURGE_SETTLED = f"""
DELETE FROM webhook_deliveries WHERE id = ANY(ARRAY(
    SELECT id FROM webhook_deliveries
    WHERE status <> {_PENDING} AND updated_at < $1
    ORDER BY id LIMIT $2
))
"""  # noqa: S608

PURGE_EVENTS = """
DELETE FROM webhook_events WHERE id = ANY(ARRAY(
    SELECT id FROM webhook_events AS event
    WHERE created_at < $1
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE event_id = event.id)
    ORDER BY id LIMIT $2
))
"""


async def purge_settled(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_SETTLED, before, limit))


async def purge_events(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_EVENTS, before, limit))


# Rotating the secrets at rest (`storekit-sync rotate-secrets`): every endpoint's, a batch at a
# time in the order of their ids, each replaced only if it is still what was read.
SEALED_SECRETS = """
SELECT id, publisher_id, topic, url, secret_encrypted FROM webhook_endpoints
WHERE id > $1 ORDER BY id LIMIT $2
"""
SEALED_SECRET = """
SELECT id, publisher_id, topic, url, secret_encrypted FROM webhook_endpoints WHERE id = $1
"""  # noqa: S105 (a statement)
RESEAL_SECRET = """
UPDATE webhook_endpoints SET secret_encrypted = $3
WHERE id = $1 AND secret_encrypted = $2
RETURNING id
"""  # noqa: S105 (a statement)


async def sealed_secrets(db: Executor, after_id: int, limit: int) -> list[Row]:
    return list(await db.fetch(SEALED_SECRETS, after_id, limit))


async def sealed_secret(db: Executor, endpoint_id: int) -> Row | None:
    return await db.fetchrow(SEALED_SECRET, endpoint_id)


async def reseal_secret(db: Executor, endpoint_id: int, old: bytes, new: bytes) -> bool:
    """Replace the endpoint's sealed secret, unless it changed since it was read."""
    return await db.fetchval(RESEAL_SECRET, endpoint_id, old, new) is not None
