"""When a failed delivery is tried again: the retry schedule, jitter and `Retry-After` (docs/api.md §5)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.1  # ±10 %, so that endpoints that failed together are not retried together
MAX_RETRY_AFTER = 86_400.0  # an endpoint may ask to wait, but not for more than a day
RETRY_AFTER_STATUSES = (429, 503)
_random = secrets.SystemRandom()


def jittered(seconds: float, spread: float = JITTER) -> float:
    return max(0.0, seconds * _random.uniform(1 - spread, 1 + spread))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP-date; None when unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def next_delay(
    schedule: Sequence[float], tries: int, retry_after: float | None = None
) -> float | None:
    """Seconds until the next try after `tries` failed tries of this round; None when the
    schedule is exhausted. `Retry-After` wins when it asks for longer than the schedule."""
    if tries > len(schedule):
        return None
    delay = jittered(schedule[tries - 1])
    return delay if retry_after is None else max(delay, retry_after)
