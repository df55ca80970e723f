"""The first part of a pass: each app's notification history, a page per step. A page's new
notifications are verified outside any transaction, then stored (each with its job, exactly as a
posted one) with the cursor's new place, in one transaction; the workers apply them."""

from __future__ import annotations

import logging
from datetime import datetime

from app.apple.budget import OverBudget
from app.apple.history import (
    INVALID_PAGINATION_TOKEN,
    PAGINATION_TOKEN_EXPIRED,
    START_DATE_AFTER_END_DATE,
    START_DATE_TOO_FAR_IN_PAST,
    HistoryPage,
    history_page,
)
from app.apple.notifications import VerifiedNotification
from app.apple.transactions import AppleFinal, AppleTransient, apple_code
from app.context import Context
from app.handlers.reconcile.fence import Fence
from app.metrics import NOTIFICATIONS_RECOVERED, NOTIFICATIONS_REFUSED
from app.notifications import service as notifications
from app.reconcile import repository, service
from app.reconcile.repository import Cursor
from app.reconcile.service import RETENTION, Tally, Unit, Window

log = logging.getLogger(__name__)
SHORTEST_RETENTION = min(RETENTION.values())


def _fixed(window: Window, code: int | None, now: datetime) -> Window | None:
    """The window to ask again after Apple refused this one, if the refusal is about it."""
    if code in (INVALID_PAGINATION_TOKEN, PAGINATION_TOKEN_EXPIRED) and window.token:
        return Window(window.start, window.end)  # read the window again: nothing is stored twice
    if code == START_DATE_TOO_FAR_IN_PAST:
        start = max(window.start, now - SHORTEST_RETENTION + service.EDGE)
        return Window(start, window.end)
    return None


async def _verified(
    context: Context, unit: Unit, signed_payloads: list[str]
) -> list[tuple[VerifiedNotification, str]]:
    """The page's notifications not stored yet, verified; one that fails verification is logged,
    counted and left out (a transient failure raises: the page is read again next pass)."""
    fresh = await notifications.unknown(context.db, unit.app.publisher_id, signed_payloads)
    verified = []
    for signed in fresh:
        try:
            verified.append(
                (await notifications.verify_recovered(context.apple, unit.app, signed), signed)
            )
        except AppleFinal as exc:
            NOTIFICATIONS_REFUSED.inc()
            fields = {"unit": unit.describe(), "error": str(exc)}
            log.warning(
                "a notification of Apple's history failed verification", extra={"fields": fields}
            )
    return verified


async def _store(
    context: Context, fence: Fence, unit: Unit, at: tuple[Cursor, Window], page: HistoryPage
) -> int:
    """One step: the page's new notifications and the cursor's new place, in one transaction."""
    cursor, window = at
    verified = await _verified(context, unit, page.signed_payloads)
    now, stored = context.clock.now(), []
    async with context.db.transaction() as tx:
        await fence.check(tx)
        for note, signed in verified:
            if await notifications.store_recovered(tx, unit.app.publisher_id, note, signed, now):
                stored.append(note)
        await repository.save_cursor(tx, service.reading(cursor, window, page.next_token), now)
    if stored:
        context.waker.poke()
        NOTIFICATIONS_RECOVERED.inc(len(stored))
    for note in stored:
        fields = {
            "unit": unit.describe(),
            "notificationUUID": note.notification_uuid,
            "notificationType": note.notification_type,
        }
        log.info("notification recovered from Apple's history", extra={"fields": fields})
    return len(stored)


async def _note(context: Context, fence: Fence, cursor: Cursor, error: Exception) -> None:
    async with context.db.transaction() as tx:
        await fence.check(tx)
        await repository.note_error(tx, cursor, str(error)[:2000], context.clock.now())


async def _failed(
    context: Context, fence: Fence, at: tuple[Unit, Cursor], tally: Tally, exc: AppleTransient
) -> None:
    """Apple failed beyond the retries: this unit stops (noted on its cursor), the pass goes on
    unless Apple failed so several times in a row."""
    unit, cursor = at
    await _note(context, fence, cursor, exc)
    tally.failed(f"history of {unit.describe()}", exc)


async def _page(context: Context, unit: Unit, window: Window, tally: Tally) -> HistoryPage:
    async def ask() -> HistoryPage:
        span = (window.start, window.end)
        return await history_page(context.apple, unit.app, unit.environment, span, window.token)

    return await service.with_retries(ask, tally)


async def read_history(context: Context, fence: Fence, unit: Unit, tally: Tally) -> None:
    """Read the unit's window page by page, up to the pass's bound (then `tally.more`). A long
    wait for Apple's rate limit or budget, a refusal, or a transient failure that outlasts the
    retries stops this unit (noted on its cursor); the last of several such failures in a row
    raises and stops the pass (`Tally.failed`)."""
    now = context.clock.now()
    cursor = await repository.cursor(context.db, *unit.key)
    window, fixes, pages = service.window(cursor, unit, now), set[int | None](), 0
    while window is not None:
        try:
            page = await _page(context, unit, window, tally)
        except AppleTransient as exc:
            await _failed(context, fence, (unit, cursor), tally, exc)
            return
        except (AppleFinal, OverBudget) as exc:
            if isinstance(exc, AppleFinal):
                tally.answered()
            code = apple_code(exc)
            if code == START_DATE_AFTER_END_DATE:
                return  # Apple's clock is behind ours: nothing newer to read yet
            fixed = _fixed(window, code, now) if isinstance(exc, AppleFinal) else None
            if fixed is not None and code not in fixes:
                fixes.add(code)
                window = fixed
                continue
            await _note(context, fence, cursor, exc)
            tally.stop(f"history of {unit.describe()}", exc)
            return
        tally.answered()
        try:
            tally.recovered += await _store(context, fence, unit, (cursor, window), page)
        except AppleTransient as exc:  # a notification's verification: the page is read again
            await _failed(context, fence, (unit, cursor), tally, exc)
            return
        pages += 1
        if page.next_token is None:
            return
        window = Window(window.start, window.end, page.next_token)
        if pages >= service.PAGES_PER_UNIT:
            tally.more = True
            return
