"""The durable job queue: a table in the service's own database (DESIGN decision 2).

Jobs are written in the same transaction as what they act on. Workers claim due jobs with
`FOR UPDATE SKIP LOCKED` under a lease that a heartbeat renews; a job whose worker died is claimed
again when its lease runs out. Times come from the injected clock, never from SQL's `now()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Job, table

WAKE_CHANNEL = "storekit_sync_jobs"
JOBS = table(Job)
J = JOBS.c
LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


async def enqueue(
    session: AsyncSession, kind: str, payload: dict[str, Any], run_at: datetime
) -> int:
    """Add a job in the caller's transaction; it becomes visible to workers at commit."""
    job_id = await session.scalar(
        insert(JOBS)
        .values(kind=kind, payload=payload, run_at=run_at, attempts=0, created_at=run_at)
        .returning(J.id)
    )
    assert job_id is not None
    return int(job_id)


CLAIM = """
UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM jobs
    WHERE run_at <= $3 AND (locked_until IS NULL OR locked_until < $3)
    ORDER BY run_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, payload, attempts
"""


async def claim(
    pool: asyncpg.Pool, worker_id: str, now: datetime, limit: int, lease: timedelta = LEASE
) -> list[ClaimedJob]:
    """Take up to `limit` due jobs that nobody holds (or whose holder's lease ran out).
    One statement on the plain pool: it needs no transaction around it."""
    rows = await pool.fetch(CLAIM, worker_id, now + lease, now, limit)
    return [ClaimedJob(r["id"], r["kind"], json.loads(r["payload"]), r["attempts"]) for r in rows]


async def heartbeat(
    session: AsyncSession,
    worker_id: str,
    job_ids: list[int],
    now: datetime,
    lease: timedelta = LEASE,
) -> None:
    """Renew the lease of the jobs this worker still holds."""
    if job_ids:
        await session.execute(
            update(JOBS)
            .where(J.id.in_(job_ids), J.locked_by == worker_id)
            .values(locked_until=now + lease)
        )


COMPLETE = "DELETE FROM jobs WHERE id = $1"  # on the plain pool
_COMPLETE = text("DELETE FROM jobs WHERE id = :id")  # in a session's transaction


async def complete(session: AsyncSession, job_id: int) -> None:
    await session.execute(_COMPLETE, {"id": job_id})


async def reschedule(
    session: AsyncSession, job_id: int, run_at: datetime, error: str | None = None
) -> None:
    """Release a job to run again at `run_at` (a retry, or a job handed back at shutdown)."""
    await session.execute(
        update(JOBS)
        .where(J.id == job_id)
        .values(run_at=run_at, locked_by=None, locked_until=None, last_error=error)
    )


RESCHEDULE = """
UPDATE jobs SET run_at = $2, locked_by = NULL, locked_until = NULL, last_error = $3 WHERE id = $1
"""  # on a plain asyncpg connection: `reschedule`'s statement


RELEASE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = attempts - 1
WHERE id = ANY($1::bigint[]) AND locked_by = $2
"""


async def release(pool: asyncpg.Pool, holder: str, job_ids: list[int]) -> None:
    """Hand back held jobs at once (graceful shutdown, held deliveries that will not go now),
    without counting the try. One statement on the plain pool."""
    if job_ids:
        await pool.execute(RELEASE, job_ids, holder)


NOTIFY = f"NOTIFY {WAKE_CHANNEL}"
