"""The rules of a reconciliation pass (docs/api.md §6), for the `reconcile` job to run step by step.

- *Notification history.* Each app of each active integration, in each environment it is asked
  in, is a unit with a cursor. A pass reads the window from where the cursor has read to, less an
  overlap of an hour, up to now (the first look: from the integration's creation), at most Apple's
  retention back; every page is a step that stores what it brought and where it stands in one
  transaction, so a pass that stops anywhere is resumed at that page.
- *Expiry safety net.* Auto-renewable subscriptions still stored active whose access ended more
  than ten minutes ago with no word from Apple since are read again from Apple (Get All
  Subscription Statuses) and corrected like a notification would, oldest expiry first.
- *Apple's errors.* A transient failure is retried a few times within the pass; a 429 (which
  pauses the app on every process until its `Retry-After`) or the background share of Apple's
  budget spent (`OverBudget`) is waited for when the wait is short. A longer wait, or a refusal,
  stops that app's part of the pass, and a failure that outlasts the retries stops the pass. The
  next pass goes on from the cursors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from appstoreserverlibrary.models.Environment import Environment

from app.admin import repository as admin
from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp
from app.apple.transactions import AppleFinal, ApplePurchase, AppleTransient
from app.db import Executor, Row
from app.enums import PassOutcome
from app.metrics import RECONCILE_APPLE_ERRORS, RECONCILE_UNREADABLE_KEYS
from app.reconcile import repository
from app.reconcile.repository import Cursor, PassReport
from app.security import SecretBox, SecretBoxError
from app.subscriptions import repository as subscriptions
from app.subscriptions.changes import Change, apply_state
from app.subscriptions.model import Subscription

T = TypeVar("T")
log = logging.getLogger(__name__)

OVERLAP = timedelta(hours=1)  # each window starts this long before the last one ended
LAPSED_FOR = timedelta(minutes=10)  # the safety net waits this long after access ended
# How far back Apple keeps the history (the sandbox's is shorter), less a margin for the clocks.
RETENTION = {Environment.PRODUCTION: timedelta(days=180), Environment.SANDBOX: timedelta(days=30)}
EDGE = timedelta(hours=1)
PAGES_PER_UNIT = 100  # a pass's bound per app and environment: 2,000 notifications
SAFETY_NET_LIMIT = 1000  # a pass's bound on subscriptions read again
SAFETY_NET_BATCH = 100
RETRY_DELAYS = (0.25, 0.5, 1.0)  # seconds before each retry of a transient failure
LONGEST_WAIT = 10.0  # a 429 asking to wait longer stops that app's part of the pass
DOWN_AFTER = 3  # transient failures in a row (histories or subscriptions): Apple is down


@dataclass(frozen=True)
class Unit:
    """One app in one environment: a history of its own, and a cursor."""

    app: AppleApp
    environment: Environment
    since: datetime  # the integration's creation: the first look starts there

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.app.publisher_id, self.app.bundle_id, self.environment.value)

    def describe(self) -> str:
        return f"{self.app.publisher_id}/{self.app.bundle_id}/{self.environment.value}"


@dataclass(frozen=True)
class Unreadable:
    """An app whose sealed key no configured key opens (`SecretBoxError` says why, never a
    secret)."""

    publisher_id: int
    bundle_id: str
    error: str

    def describe(self) -> str:
        return f"{self.publisher_id}/{self.bundle_id}"


@dataclass(frozen=True)
class Apps:
    """What a pass works with: every app of every active integration whose key opens, in
    `admin.ALL_ACTIVE_APPS`' order; their units, the longest untouched history first; the apps
    left out."""

    apps: dict[int, list[AppleApp]]  # by publisher
    units: list[Unit]
    unreadable: list[Unreadable]

    def of(self, publisher_id: int) -> list[AppleApp]:
        """The publisher's apps, oldest first."""
        return self.apps.get(publisher_id, [])


def _open(row: Row, box: SecretBox) -> AppleApp | Unreadable:
    try:
        return AppleApp.from_record(row, box)
    except SecretBoxError as exc:
        RECONCILE_UNREADABLE_KEYS.inc()
        found = Unreadable(
            row["publisher_id"], row["bundle_id"], f"its key cannot be opened: {exc}"
        )
        fields = {"publisherId": found.publisher_id, "bundleId": found.bundle_id, "error": str(exc)}
        log.error("an app's key cannot be opened: left out of the pass", extra={"fields": fields})
        return found


async def pass_apps(db: Executor, box: SecretBox) -> Apps:
    """Every app of every active integration, and its units, in each of its environments: the
    units whose cursors were written longest ago first (never: first of all), so the histories a
    stopped pass did not reach are read first by the next one."""
    apps: dict[int, list[AppleApp]] = {}
    found, unreadable = [], []
    for row in await admin.all_active_apps(db):
        opened = _open(row, box)
        if isinstance(opened, Unreadable):
            unreadable.append(opened)
            continue
        apps.setdefault(opened.publisher_id, []).append(opened)
        found += [Unit(opened, e, row["integration_created_at"]) for e in opened.environments()]
    written = await repository.cursor_times(db)
    never = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda unit: written.get(unit.key, never))
    return Apps(apps, found, unreadable)


@dataclass(frozen=True)
class Window:
    """The history to read: from `start` to `end`, from the page `token` leads to."""

    start: datetime
    end: datetime
    token: str | None = None


def earliest(environment: Environment, now: datetime) -> datetime:
    return now - RETENTION[environment] + EDGE


def window(cursor: Cursor, unit: Unit, now: datetime) -> Window | None:
    """The window a pass reads: the one a pass stopped in, else the next one; None when there
    is nothing to read yet."""
    if cursor.window_start is not None and cursor.window_end is not None:
        return Window(cursor.window_start, cursor.window_end, cursor.page_token)
    start = cursor.checked_until - OVERLAP if cursor.checked_until is not None else unit.since
    start = max(start, earliest(unit.environment, now))
    return Window(start, now) if start < now else None


def reading(key: Cursor, window: Window, next_token: str | None) -> Cursor:
    """Where the cursor stands after a page: within the window, or past its end."""
    if next_token is None:
        return Cursor(key.publisher_id, key.bundle_id, key.environment, checked_until=window.end)
    return Cursor(
        key.publisher_id,
        key.bundle_id,
        key.environment,
        checked_until=key.checked_until,
        window_start=window.start,
        window_end=window.end,
        page_token=next_token,
    )


@dataclass
class Tally:
    """What one pass did, and why it stopped anywhere."""

    recovered: int = 0
    checked: int = 0
    corrected: int = 0
    apple_errors: int = 0
    more: bool = False  # a bound was reached: another pass follows at once
    stopped: list[str] = field(default_factory=list)
    failing: int = 0  # transient failures in a row, each beyond its retries

    def error(self, kind: str) -> None:
        self.apple_errors += 1
        RECONCILE_APPLE_ERRORS.labels(kind).inc()

    def stop(self, where: str, exc: Exception) -> None:
        self.stopped.append(f"{where}: {exc}")
        log.warning("reconciliation stopped", extra={"fields": {"where": where, "error": str(exc)}})

    def answered(self) -> None:
        """Apple answered (whatever it said): it is not down."""
        self.failing = 0

    def failed(self, where: str, exc: AppleTransient) -> None:
        """Apple failed on one history or subscription beyond the retries: that one stops, the
        pass goes on, unless it is the DOWN_AFTER-th in a row (raises: Apple is down)."""
        self.stop(where, exc)
        self.failing += 1
        if self.failing >= DOWN_AFTER:
            raise AppleTransient(f"Apple failed {self.failing} in a row, the last: {exc}")

    def report(self, superseded: bool = False) -> PassReport:
        if superseded:
            outcome = PassOutcome.SUPERSEDED
        elif self.stopped:
            outcome = PassOutcome.STOPPED
        else:
            outcome = PassOutcome.PARTIAL if self.more else PassOutcome.COMPLETED
        detail = "; ".join(self.stopped)[:2000] or None
        counts = (self.recovered, self.checked, self.corrected, self.apple_errors)
        return PassReport(outcome, *counts, detail)


def error_kind(exc: Exception) -> str:
    """The `kind` label of an Apple error in a pass: bounded."""
    if isinstance(exc, OverBudget):
        return "rate_limited"  # Apple's 429 (the app is paused), or the budget spent
    return "refused" if isinstance(exc, AppleFinal) else "transient"


def _wait(exc: AppleTransient | OverBudget, delay: float | None) -> float | None:
    if isinstance(exc, OverBudget):
        return max((exc.until - datetime.now(UTC)).total_seconds(), 0.0)
    return exc.retry_after if exc.retry_after is not None else delay


async def with_retries(
    call: Callable[[], Awaitable[T]],
    tally: Tally,
    delays: tuple[float, ...] = RETRY_DELAYS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call`, tried again after a transient failure (after the next of `delays`) or a 429 or a
    spent budget (`OverBudget`: when it says, if that is within LONGEST_WAIT). Raises what
    remains."""
    for delay in (*delays, None):
        try:
            return await call()
        except (AppleTransient, OverBudget) as exc:
            tally.error(error_kind(exc))
            wait = _wait(exc, delay)
            if delay is None or wait is None or wait > LONGEST_WAIT:
                raise
            fields = {"error": str(exc), "retryIn": round(wait, 3)}
            log.info("Apple failed during a reconciliation pass", extra={"fields": fields})
            await sleep(max(wait, 0.0))
        except AppleFinal as exc:
            tally.error(error_kind(exc))
            raise
    raise AssertionError("unreachable")


def apps_to_ask(apps: list[AppleApp], subscription: Subscription) -> list[AppleApp]:
    """The app of the purchase when it is known, else every app in turn."""
    if subscription.bundle_id is None:
        return apps
    return [app for app in apps if app.bundle_id == subscription.bundle_id]


async def lapsed(
    db: Executor, now: datetime, after: tuple[datetime, int] | None
) -> list[Subscription]:
    """The next batch of the safety net's candidates it has not failed to read since they
    lapsed, after `after` (expiry and id) when given."""
    return await subscriptions.lapsed(db, now - LAPSED_FOR, SAFETY_NET_BATCH, after)


async def candidates(db: Executor, now: datetime) -> AsyncGenerator[Subscription]:
    """The safety net's candidates, a batch at a time (no connection held in between): oldest
    expiry first; then those it failed to read since they lapsed (before `now`), the longest
    failed first, so that they never hold up the others."""
    after: tuple[datetime, int] | None = None
    while batch := await lapsed(db, now, after):
        for subscription in batch:
            assert subscription.expires_at is not None and subscription.id is not None
            after = (subscription.expires_at, subscription.id)
            yield subscription
    cutoff, after = now - LAPSED_FOR, None
    while batch := await subscriptions.lapsed_failed(db, cutoff, SAFETY_NET_BATCH, now, after):
        for subscription in batch:
            assert subscription.apple_check_failed_at is not None and subscription.id is not None
            after = (subscription.apple_check_failed_at, subscription.id)
            yield subscription


async def correct(
    tx: Executor, subscription: Subscription, facts: ApplePurchase, now: datetime
) -> Change:
    """Apply Apple's state, read again, to the subscription's purchase, under its lock; the
    subscription is marked read (whatever changed)."""
    publisher_id, original = subscription.publisher_id, subscription.original_transaction_id
    await subscriptions.lock_purchase(tx, publisher_id, original)
    change = await apply_state(tx, publisher_id, facts, now)
    assert subscription.id is not None
    await subscriptions.mark_checked(tx, subscription.id, now)
    return change


async def mark_read(tx: Executor, subscription: Subscription, now: datetime) -> None:
    """Apple could not tell about it (a final answer): not asked again for this expiry."""
    assert subscription.id is not None
    await subscriptions.mark_checked(tx, subscription.id, now)


async def mark_failed(tx: Executor, subscription: Subscription, now: datetime) -> None:
    """Apple failed on it beyond the retries: read after the others from now on."""
    assert subscription.id is not None
    await subscriptions.mark_check_failed(tx, subscription.id, now)
