"""The access rule is written once per form: the Python that the webhooks and answers use, and the
SQL that the lists and entitlements filter by. Over every case that matters, they agree."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from app.context import Context
from app.enums import EndReason, SubscriptionStatus
from app.subscriptions import repository
from app.subscriptions.access import effective_status, status_sql
from app.subscriptions.model import Subscription
from tests.helpers.api import PublisherRef

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _cases(publisher_id: int) -> list[Subscription]:
    """Stored status x revocation x expiry x grace end x Apple's status."""
    grid = itertools.product(
        list(SubscriptionStatus),
        (None, NOW - HOUR),
        (None, NOW - HOUR, NOW + HOUR),
        (None, NOW - 2 * HOUR, NOW + 2 * HOUR),
        (None, 1, 4, 2),
    )
    made = []
    for n, (status, revoked, expires, grace, apple) in enumerate(grid):
        ended = EndReason.REFUNDED if status == SubscriptionStatus.TERMINATED else None
        made.append(
            Subscription(None, publisher_id, 1000 + n, "S123456789_US", status,
                         "Auto-Renewable Subscription", "p", f"o{n}", f"l{n}", "Sandbox",
                         expires, grace, revoked, apple, False, False, ended, None, NOW, NOW)
        )  # fmt: skip
    return made


async def test_python_and_sql_say_the_same(context: Context, publisher: PublisherRef) -> None:
    cases = _cases(publisher.id)
    async with context.db.transaction() as tx:
        for subscription in cases:
            await repository.insert(tx, subscription)
    for status in SubscriptionStatus:
        condition, values = status_sql(status, NOW, 2)
        rows = await context.db.fetch(
            f"SELECT id FROM subscriptions WHERE publisher_id = $1 AND {condition}",  # noqa: S608
            publisher.id,
            *values,
        )
        expected = {s.id for s in cases if effective_status(s, NOW) == status}
        assert {row["id"] for row in rows} == expected, status
        assert expected, f"no case is {status}: the grid misses one"
