"""The reconciliation's tables: `notification_history_cursors` (how far each app's notification
history has been read, per environment) and `reconcile_passes` (each pass: who, when, how it
ended, what it did). Their one writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.db import Executor, Row
from app.enums import PassOutcome
from app.jobs.queue import parse_count


@dataclass(frozen=True)
class Cursor:
    """Apple's history of one app in one environment is read to `checked_until`; a window being
    read (`window_start`, `window_end`) goes on at the page `page_token` leads to."""

    publisher_id: int
    bundle_id: str
    environment: str
    checked_until: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    page_token: str | None = None
    last_error: str | None = None


CURSOR_FIELDS = tuple(Cursor.__dataclass_fields__)

CURSOR = f"""
SELECT {", ".join(CURSOR_FIELDS)} FROM notification_history_cursors
WHERE publisher_id = $1 AND bundle_id = $2 AND environment = $3
"""  # noqa: S608 (the dataclass's fields)

SAVE_CURSOR = f"""
INSERT INTO notification_history_cursors ({", ".join(CURSOR_FIELDS)}, updated_at)
VALUES ({", ".join(f"${n}" for n in range(1, len(CURSOR_FIELDS) + 2))})
ON CONFLICT (publisher_id, bundle_id, environment) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in (*CURSOR_FIELDS[3:], "updated_at"))}
"""  # noqa: S608

NOTE_ERROR = """
INSERT INTO notification_history_cursors (publisher_id, bundle_id, environment, last_error,
    updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (publisher_id, bundle_id, environment) DO UPDATE SET
    last_error = excluded.last_error, updated_at = excluded.updated_at
"""


def _cursor(row: Row) -> Cursor:
    return Cursor(**{name: row[name] for name in CURSOR_FIELDS})


async def cursor(db: Executor, publisher_id: int, bundle_id: str, environment: str) -> Cursor:
    """The cursor of the app's history in the environment (a new one: nothing read yet)."""
    row = await db.fetchrow(CURSOR, publisher_id, bundle_id, environment)
    return _cursor(row) if row is not None else Cursor(publisher_id, bundle_id, environment)


async def save_cursor(db: Executor, saved: Cursor, now: datetime) -> None:
    await db.execute(SAVE_CURSOR, *(getattr(saved, name) for name in CURSOR_FIELDS), now)


async def note_error(db: Executor, key: Cursor, error: str, now: datetime) -> None:
    """Why the cursor could not move this time; where it stands is left as it is."""
    await db.execute(NOTE_ERROR, key.publisher_id, key.bundle_id, key.environment, error, now)


NOTE_APP_ERROR = """
UPDATE notification_history_cursors SET last_error = $3, updated_at = $4
WHERE publisher_id = $1 AND bundle_id = $2
"""


async def note_app_error(
    db: Executor, publisher_id: int, bundle_id: str, error: str, now: datetime
) -> None:
    """Why the app's cursors (those it has, in any environment) could not move this time."""
    await db.execute(NOTE_APP_ERROR, publisher_id, bundle_id, error, now)


CURSOR_TIMES = """
SELECT publisher_id, bundle_id, environment, updated_at FROM notification_history_cursors
"""


async def cursor_times(db: Executor) -> dict[tuple[int, str, str], datetime]:
    """When each cursor was last written (moved, or an error noted), by its key."""
    rows = await db.fetch(CURSOR_TIMES)
    return {(r["publisher_id"], r["bundle_id"], r["environment"]): r["updated_at"] for r in rows}


RECORD_START = """
INSERT INTO reconcile_passes (holder, started_at, recovered, checked, corrected, apple_errors)
VALUES ($1, $2, 0, 0, 0, 0)
RETURNING id
"""


async def begin_pass(db: Executor, holder: str, now: datetime) -> int:
    return int(await db.fetchval(RECORD_START, holder, now))


@dataclass(frozen=True)
class PassReport:
    outcome: PassOutcome
    recovered: int
    checked: int
    corrected: int
    apple_errors: int
    detail: str | None


RECORD_END = """
UPDATE reconcile_passes SET finished_at = $2, outcome = $3, recovered = $4, checked = $5,
    corrected = $6, apple_errors = $7, detail = $8
WHERE id = $1
"""


async def finish_pass(db: Executor, pass_id: int, now: datetime, report: PassReport) -> None:
    r = report
    values = (r.outcome, r.recovered, r.checked, r.corrected, r.apple_errors, r.detail)
    await db.execute(RECORD_END, pass_id, now, *values)


# Retention: passes that started before the cutoff.
PURGE_PASSES = """
DELETE FROM reconcile_passes WHERE id = ANY(ARRAY(
    SELECT id FROM reconcile_passes WHERE started_at < $1 ORDER BY id LIMIT $2
))
"""


async def purge_passes(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_PASSES, before, limit))
