"""The durable job queue: the `jobs` table, and the only module that writes it (docs/design.md, decision 2).

Jobs are written in the same transaction as what they act on. Where that is one statement for
speed (a register writes its sync and its job in one; an event its deliveries and their jobs), the
statement takes its `jobs` part from here (`insert_jobs`, `DELETE_JOB`): the queue's SQL is
written once. Workers claim due jobs with `FOR UPDATE SKIP LOCKED` under a lease that a heartbeat
renews; a job whose worker died is claimed again when its lease runs out. Times come from the
injected clock, never from SQL's `now()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.db import Executor

WAKE_CHANNEL = "storekit_sync_jobs"
NOTIFY = f"NOTIFY {WAKE_CHANNEL}"
LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # every claim counts (a holder's proof: `still_held`)
    failures: int = 0  # how many times in a row its handler failed before this claim


def insert_jobs(
    source: str,
    *,
    kind: str,
    payload: str,
    run_at: str,
    attempts: str = "0",
    holder: str = "NULL",
    held_until: str = "NULL",
    order_by: str | None = None,
) -> str:
    """`INSERT INTO jobs … SELECT … FROM source`: one job per row of `source`, for a statement that
    writes its jobs with what they act on. Every argument is SQL (a parameter such as `$3`, a
    column of `source`, a constant of the caller's), never a value from input."""
    ordered = f" ORDER BY {order_by}" if order_by else ""
    return f"""INSERT INTO jobs (kind, payload, run_at, attempts, locked_by, locked_until,
        created_at)
    SELECT {kind}, {payload}, {run_at}, {attempts}, {holder}, {held_until}, {run_at}
    FROM {source}{ordered}"""  # noqa: S608


DELETE_JOB = "DELETE FROM jobs WHERE id = {job}"  # `.format(job="$n")` inside a statement

ENQUEUE = insert_jobs("(VALUES (1)) AS one", kind="$1", payload="$2::jsonb", run_at="$3") + (
    " RETURNING id"
)


async def enqueue(db: Executor, kind: str, payload: dict[str, Any], run_at: datetime) -> int:
    """Add a job in the caller's transaction; it becomes visible to workers at commit."""
    return int(await db.fetchval(ENQUEUE, kind, json.dumps(payload), run_at))


CLAIM = """
UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM jobs
    WHERE run_at <= $3 AND (locked_until IS NULL OR locked_until < $3)
    ORDER BY run_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, payload, attempts, failures
"""


async def claim(
    db: Executor, worker_id: str, now: datetime, limit: int, lease: timedelta = LEASE
) -> list[ClaimedJob]:
    """Take up to `limit` due jobs that nobody holds (or whose holder's lease ran out)."""
    rows = await db.fetch(CLAIM, worker_id, now + lease, now, limit)
    return [
        ClaimedJob(r["id"], r["kind"], json.loads(r["payload"]), r["attempts"], r["failures"])
        for r in rows
    ]


HEARTBEAT = """
UPDATE jobs SET locked_until = $3 WHERE id = ANY($1::bigint[]) AND locked_by = $2
"""


async def heartbeat(
    db: Executor, holder: str, job_ids: list[int], now: datetime, lease: timedelta = LEASE
) -> None:
    """Renew the lease of the jobs `holder` still holds."""
    if job_ids:
        await db.execute(HEARTBEAT, job_ids, holder, now + lease)


COMPLETE = DELETE_JOB.format(job="$1")


async def complete(db: Executor, job_id: int) -> None:
    await db.execute(COMPLETE, job_id)


RESCHEDULE_JOB = (
    "UPDATE jobs SET run_at = {run_at}, locked_by = NULL, locked_until = NULL,"
    " last_error = {error}, failures = 0 WHERE id = {job}"
)  # `.format(...)` inside a statement, as DELETE_JOB
RESCHEDULE = RESCHEDULE_JOB.format(job="$1", run_at="$2", error="$3")


async def reschedule(db: Executor, job_id: int, run_at: datetime, error: str | None) -> None:
    """Release a job to run again at `run_at` (a retry, or a postponed attempt): its handler
    decided, so its run of failures, if any, is over."""
    await db.execute(RESCHEDULE, job_id, run_at, error)


FAILED = """
UPDATE jobs SET run_at = $2, locked_by = NULL, locked_until = NULL, last_error = $3,
    failures = failures + 1
WHERE id = $1
"""


async def failed(db: Executor, job_id: int, run_at: datetime, error: str) -> None:
    """Release a job whose handler failed (raised), to run again at `run_at`; one more failure
    in a row."""
    await db.execute(FAILED, job_id, run_at, error)


# A job's holder proves it still holds it: `attempts` grows with each claim, so a job claimed
# again by another worker (its lease ran out) no longer matches the holder's claim. Locking the
# row makes that worker's claim wait until the holder's transaction ends.
STILL_HELD = "SELECT true FROM jobs WHERE id = $1 AND attempts = $2 FOR UPDATE"


async def still_held(db: Executor, job_id: int, attempts: int) -> bool:
    """In the caller's transaction: the job is still the one its holder claimed (`attempts` as
    claimed), locked until the transaction ends."""
    return bool(await db.fetchval(STILL_HELD, job_id, attempts))


RESCHEDULE_HELD = (
    RESCHEDULE_JOB.format(job="$1", run_at="$3", error="$4") + " AND attempts = $2 RETURNING id"
)


async def reschedule_held(
    db: Executor, job_id: int, attempts: int, run_at: datetime, error: str | None
) -> bool:
    """`reschedule`, only if the job is still the one claimed with `attempts`."""
    return await db.fetchval(RESCHEDULE_HELD, job_id, attempts, run_at, error) is not None


RELEASE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = attempts - 1
WHERE id = ANY($1::bigint[]) AND locked_by = $2
"""


async def release(db: Executor, holder: str, job_ids: list[int]) -> None:
    """Hand back held jobs at once (a stopping worker, held deliveries that will not go now),
    without counting the try."""
    if job_ids:
        await db.execute(RELEASE, job_ids, holder)


# A periodic job is one row (its `singleton` is its kind) that its handler reschedules when done.
# Ensuring it also pulls it forward to `$2` unless a worker holds it now.
ENSURE_PERIODIC = """
INSERT INTO jobs (kind, payload, run_at, attempts, created_at, singleton)
VALUES ($1::text, '{}'::jsonb, $2, 0, $2, $1::text)
ON CONFLICT (singleton) WHERE singleton IS NOT NULL
DO UPDATE SET run_at = least(jobs.run_at, excluded.run_at)
WHERE jobs.locked_by IS NULL OR jobs.locked_until < excluded.run_at
"""


async def ensure_periodic(db: Executor, kind: str, run_at: datetime) -> None:
    """The periodic job of `kind` exists and is due by `run_at`; one row, whatever the number
    of processes that ensure it: one process runs it at a time."""
    await db.execute(ENSURE_PERIODIC, kind, run_at)


def parse_count(status: str) -> int:
    """The row count of a command's status (`DELETE 42`)."""
    return int(status.rsplit(" ", 1)[-1])


async def wake(db: Executor) -> None:
    """Tell the workers listening anywhere that jobs were committed."""
    await db.execute(NOTIFY)


DUE_BY_KIND = """
SELECT kind, count(*) AS due, min(run_at) AS oldest FROM jobs WHERE run_at <= $1 GROUP BY kind
"""


async def due_by_kind(db: Executor, now: datetime) -> list[tuple[str, int, datetime]]:
    """For /metrics: how many jobs of each kind are due, and since when the oldest."""
    rows = await db.fetch(DUE_BY_KIND, now)
    return [(str(r["kind"]), int(r["due"]), r["oldest"]) for r in rows]
