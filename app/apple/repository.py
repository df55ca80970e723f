"""The tables of Apple's rate limits: `apple_budgets` and `apple_pauses`; their one writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.db import Executor


@dataclass(frozen=True)
class Key:
    """One app in one environment, and (for a budget) one of Apple's endpoints."""

    publisher_id: int
    bundle_id: str
    environment: str
    endpoint: str = ""


PAUSED_UNTIL = """
SELECT until FROM apple_pauses
WHERE publisher_id = $1 AND bundle_id = $2 AND environment = $3 AND until > $4
"""


async def paused_until(db: Executor, key: Key, now: datetime) -> datetime | None:
    value = await db.fetchval(PAUSED_UNTIL, key.publisher_id, key.bundle_id, key.environment, now)
    return value if isinstance(value, datetime) else None


PAUSE = """
INSERT INTO apple_pauses (publisher_id, bundle_id, environment, until) VALUES ($1, $2, $3, $4)
ON CONFLICT (publisher_id, bundle_id, environment)
DO UPDATE SET until = greatest(apple_pauses.until, excluded.until)
"""


async def pause(db: Executor, key: Key, until: datetime) -> None:
    await db.execute(PAUSE, key.publisher_id, key.bundle_id, key.environment, until)


OPEN_WINDOW = """
INSERT INTO apple_budgets (publisher_id, bundle_id, environment, endpoint, window_started_at,
    used, used_background)
VALUES ($1, $2, $3, $4, $5, 0, 0)
ON CONFLICT (publisher_id, bundle_id, environment, endpoint) DO NOTHING
"""
LOCK_WINDOW = """
SELECT window_started_at, used, used_background FROM apple_budgets
WHERE publisher_id = $1 AND bundle_id = $2 AND environment = $3 AND endpoint = $4
FOR UPDATE
"""


@dataclass
class Window:
    started_at: datetime
    used: int
    used_background: int


async def lock_window(db: Executor, key: Key, now: datetime) -> Window:
    """The endpoint's current window for the app, made if there is none, locked."""
    values = (key.publisher_id, key.bundle_id, key.environment, key.endpoint)
    await db.execute(OPEN_WINDOW, *values, now)
    row = await db.fetchrow(LOCK_WINDOW, *values)
    assert row is not None
    return Window(row["window_started_at"], row["used"], row["used_background"])


SAVE_WINDOW = """
UPDATE apple_budgets SET window_started_at = $5, used = $6, used_background = $7
WHERE publisher_id = $1 AND bundle_id = $2 AND environment = $3 AND endpoint = $4
"""


async def save_window(db: Executor, key: Key, window: Window) -> None:
    values = (key.publisher_id, key.bundle_id, key.environment, key.endpoint)
    await db.execute(SAVE_WINDOW, *values, window.started_at, window.used, window.used_background)
