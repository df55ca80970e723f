"""The windows a pass reads and how it retries, as rules: the overlap, the first look, Apple's
retention, resuming a window, and the retries' waits (no Apple, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from appstoreserverlibrary.models.Environment import Environment

from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp
from app.apple.transactions import AppleFinal, AppleTransient
from app.enums import SyncResult
from app.reconcile.repository import Cursor
from app.reconcile.service import (
    OVERLAP,
    Tally,
    Unit,
    Window,
    reading,
    window,
    with_retries,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
APP = AppleApp(1, "com.example.tv", 1, "issuer", "KEY", "pem", "Production", NOW)


def _unit(since: datetime, environment: Environment = Environment.PRODUCTION) -> Unit:
    return Unit(APP, environment, since)


def _cursor(**fields: object) -> Cursor:
    return Cursor(1, APP.bundle_id, "Production", **fields)  # type: ignore[arg-type]


def test_the_first_look_starts_when_the_integration_was_created() -> None:
    since = NOW - timedelta(days=3)
    assert window(_cursor(), _unit(since), NOW) == Window(since, NOW)


def test_the_first_look_goes_back_no_further_than_apple_keeps() -> None:
    found = window(_cursor(), _unit(NOW - timedelta(days=400)), NOW)
    assert found is not None and found.start == NOW - timedelta(days=180) + timedelta(hours=1)
    sandbox = window(_cursor(), _unit(NOW - timedelta(days=400), Environment.SANDBOX), NOW)
    assert sandbox is not None and sandbox.start == NOW - timedelta(days=30) + timedelta(hours=1)


def test_each_next_window_overlaps_the_last_by_an_hour() -> None:
    last = NOW - timedelta(minutes=15)
    found = window(_cursor(checked_until=last), _unit(NOW - timedelta(days=3)), NOW)
    assert found == Window(last - OVERLAP, NOW)
    assert timedelta(hours=1) == OVERLAP


def test_a_window_left_midway_is_resumed_at_its_page() -> None:
    start, end = NOW - timedelta(hours=2), NOW - timedelta(minutes=30)
    cursor = _cursor(checked_until=start, window_start=start, window_end=end, page_token="p2")
    assert window(cursor, _unit(NOW), NOW) == Window(start, end, "p2")


def test_nothing_to_read_before_the_integration_exists() -> None:
    assert window(_cursor(), _unit(NOW + timedelta(seconds=1)), NOW) is None


def test_the_cursor_keeps_its_place_within_a_window_and_moves_past_it_at_the_end() -> None:
    done = NOW - timedelta(hours=1)
    span = Window(done - OVERLAP, NOW)
    midway = reading(_cursor(checked_until=done), span, "p3")
    assert (midway.checked_until, midway.window_start, midway.page_token) == (
        done,
        span.start,
        "p3",
    )
    ended = reading(midway, Window(span.start, span.end, "p3"), None)
    assert (ended.checked_until, ended.window_start, ended.page_token) == (NOW, None, None)


class Calls:
    def __init__(self, *failures: Exception) -> None:
        self.failures, self.calls, self.waits = list(failures), 0, list[float]()

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_transient_failures_are_retried_with_backoff() -> None:
    calls, tally = Calls(AppleTransient("503"), AppleTransient("503")), Tally()
    assert await with_retries(calls, tally, (0.25, 0.5, 1.0), calls.sleep) == "ok"
    assert (calls.calls, calls.waits, tally.apple_errors) == (3, [0.25, 0.5], 2)


async def test_a_short_wait_for_the_rate_limit_is_waited_and_a_long_one_stops() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    short, tally = Calls(OverBudget(soon, "Apple's rate limit (429)")), Tally()
    assert await with_retries(short, tally, (0.25,), short.sleep) == "ok"
    assert len(short.waits) == 1 and 1.0 < short.waits[0] <= 2.0
    assert tally.apple_errors == 1
    later = datetime.now(UTC) + timedelta(hours=1)
    long = Calls(OverBudget(later, "Apple's rate limit (429)"))
    with pytest.raises(OverBudget):
        await with_retries(long, Tally(), (0.25,), long.sleep)
    assert (long.calls, long.waits) == (1, [])


async def test_retries_end_and_refusals_are_not_retried() -> None:
    down = Calls(*(AppleTransient("500") for _ in range(4)))
    with pytest.raises(AppleTransient):
        await with_retries(down, Tally(), (0.0, 0.0, 0.0), down.sleep)
    assert down.calls == 4
    refused = Calls(AppleFinal(SyncResult.APPLE_UNAVAILABLE, "401"))
    with pytest.raises(AppleFinal):
        await with_retries(refused, Tally(), (0.0,), refused.sleep)
    assert refused.calls == 1
