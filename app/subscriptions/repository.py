"""The `subscriptions` table: its one writer, its readers, and the purchase's lock.

Every change to a purchase (a sync's finalize, a notification, the reconciliation) first takes
`lock_purchase`, then reads the purchase's current subscription `FOR UPDATE`: they never interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.db import Executor, Row
from app.enums import EndReason, ProductType, SubscriptionStatus
from app.subscriptions.access import ACCESS_END_SQL, access_end, active_sql, status_sql
from app.subscriptions.model import COLUMNS, WRITTEN, Subscription

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM subscriptions"  # noqa: S608 (the model's columns)
_TERMINATED = f"'{SubscriptionStatus.TERMINATED}'"

LOCK_PURCHASE = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# The purchase's subscription that is not terminated, else the last one that was: what the service
# holds of the purchase, and of Apple's word on it (`apple_signed_at`), locked.
LATEST = f"""{_SELECT}
WHERE publisher_id = $1 AND original_transaction_id = $2
ORDER BY status = {_TERMINATED}, id DESC
LIMIT 1
FOR UPDATE
"""

INSERT = f"""
INSERT INTO subscriptions ({", ".join(WRITTEN)})
VALUES ({", ".join(f"${n}" for n in range(1, len(WRITTEN) + 1))})
RETURNING id
"""  # noqa: S608

SAVE = f"""
UPDATE subscriptions SET {", ".join(f"{name} = ${n}" for n, name in enumerate(WRITTEN, 2))}
WHERE id = $1
"""  # noqa: S608

STORED_STATUS = f"""
SELECT status FROM subscriptions
WHERE publisher_id = $1 AND original_transaction_id = $2 AND status <> {_TERMINATED}
"""  # noqa: S608

ENTITLING = f"""{_SELECT}
WHERE publisher_id = $1 AND customer_id = $2 AND offer_id = $3 AND {active_sql("$4", "$5")}
"""


# The expiry safety net's candidates (docs/api.md §6): auto-renewable subscriptions still stored active
# whose access ended before the cutoff ($1), with no word from Apple since (no notification or
# sync signed after the end, no read by the safety net after it), and an app to ask (an app of
# the publisher's active integration; the purchase's own when it is known). The constants match
# the partial index `ix_subscriptions_lapsing` (migration 0017); access ends at or after
# `expires_at`, so the index's range holds every candidate.
_LAPSED = f"""{_SELECT}
WHERE status = '{SubscriptionStatus.ACTIVE}' AND product_type = '{ProductType.AUTO_RENEWABLE}'
    AND expires_at < $1 AND ({ACCESS_END_SQL}) < $1
    AND coalesce(greatest(apple_signed_at, apple_checked_at), '-infinity') < ({ACCESS_END_SQL})
    AND EXISTS (
        SELECT 1 FROM storekit2_integrations AS i
        JOIN storekit2_apps AS a ON a.publisher_id = i.publisher_id
        WHERE i.publisher_id = subscriptions.publisher_id AND i.active
            AND (subscriptions.bundle_id IS NULL OR a.bundle_id = subscriptions.bundle_id)
    )
"""  # noqa: S608 (the model's columns and the enums' values)
# First those the net has not failed to read since they lapsed, oldest expiry first ...
_FRESH = f"""{_LAPSED}
    AND coalesce(apple_check_failed_at, '-infinity') < ({ACCESS_END_SQL})"""
LAPSED = f"{_FRESH} ORDER BY expires_at, id LIMIT $2"
# The same, after a candidate already seen in this pass ($3, $4: its expiry and id).
LAPSED_AFTER = f"{_FRESH} AND (expires_at, id) > ($3, $4) ORDER BY expires_at, id LIMIT $2"
# ... then those it failed to read since they lapsed, before this pass began ($2), the longest
# failed first (after $4, $5: the time of a failure and the id of one already seen).
_FAILED = f"""{_LAPSED}
    AND apple_check_failed_at >= ({ACCESS_END_SQL}) AND apple_check_failed_at < $2"""
LAPSED_FAILED = f"{_FAILED} ORDER BY apple_check_failed_at, id LIMIT $3"
LAPSED_FAILED_AFTER = f"""{_FAILED} AND (apple_check_failed_at, id) > ($4, $5)
ORDER BY apple_check_failed_at, id LIMIT $3"""

MARK_CHECKED = "UPDATE subscriptions SET apple_checked_at = $2 WHERE id = $1"
MARK_CHECK_FAILED = "UPDATE subscriptions SET apple_check_failed_at = $2 WHERE id = $1"


def _subscription(row: Row) -> Subscription:
    values = dict(row)
    values["status"] = SubscriptionStatus(values["status"])
    reason = values["terminated_reason"]
    values["terminated_reason"] = None if reason is None else EndReason(reason)
    return Subscription(**values)


async def lock_purchase(db: Executor, publisher_id: int, original: str) -> None:
    """Serialize everything that changes one purchase, until the transaction ends."""
    await db.fetchval(LOCK_PURCHASE, f"{publisher_id}:{original}")


async def latest(db: Executor, publisher_id: int, original: str) -> Subscription | None:
    """The purchase's one subscription that is not terminated, else its last terminated one;
    None when it never had one. Locked until the transaction ends."""
    row = await db.fetchrow(LATEST, publisher_id, original)
    return None if row is None else _subscription(row)


async def lapsed(
    db: Executor, cutoff: datetime, limit: int, after: tuple[datetime, int] | None = None
) -> list[Subscription]:
    """Up to `limit` of the safety net's candidates whose access ended before `cutoff` and that
    it has not failed to read since, in the order of their expiry, after `after` (an expiry and
    an id) when given."""
    if after is None:
        rows = await db.fetch(LAPSED, cutoff, limit)
    else:
        rows = await db.fetch(LAPSED_AFTER, cutoff, limit, *after)
    return [_subscription(row) for row in rows]


async def lapsed_failed(
    db: Executor,
    cutoff: datetime,
    limit: int,
    before: datetime,
    after: tuple[datetime, int] | None = None,
) -> list[Subscription]:
    """Up to `limit` of the safety net's candidates it failed to read since they lapsed (before
    `before`), the longest failed first, after `after` (a failure's time and an id) when given."""
    if after is None:
        rows = await db.fetch(LAPSED_FAILED, cutoff, before, limit)
    else:
        rows = await db.fetch(LAPSED_FAILED_AFTER, cutoff, before, limit, *after)
    return [_subscription(row) for row in rows]


async def mark_checked(db: Executor, subscription_id: int, now: datetime) -> None:
    """The safety net read the subscription from Apple at `now` (after saving any change)."""
    await db.execute(MARK_CHECKED, subscription_id, now)


async def mark_check_failed(db: Executor, subscription_id: int, now: datetime) -> None:
    """The safety net could not read the subscription from Apple at `now` (Apple failing beyond
    the retries): it is read after the others from now on."""
    await db.execute(MARK_CHECK_FAILED, subscription_id, now)


async def insert(db: Executor, subscription: Subscription) -> None:
    """Write a new subscription; it takes the id the database gives it."""
    values = [getattr(subscription, name) for name in WRITTEN]
    subscription.id = int(await db.fetchval(INSERT, *values))


async def save(db: Executor, subscription: Subscription) -> None:
    values = [getattr(subscription, name) for name in WRITTEN]
    await db.execute(SAVE, subscription.id, *values)


async def stored_status(db: Executor, publisher_id: int, original: str) -> str | None:
    """The stored status of the purchase's subscription that is not terminated, if any."""
    status = await db.fetchval(STORED_STATUS, publisher_id, original)
    return None if status is None else str(status)


@dataclass(frozen=True)
class Access:
    granted: bool
    expires_at: datetime | None


async def entitlement(
    db: Executor, publisher_id: int, customer_id: int, offer_id: str, now: datetime
) -> Access:
    """The customer's access to the offer: granted while any of its subscriptions is active,
    until the latest end among them (None: for good)."""
    active = SubscriptionStatus.ACTIVE
    rows = await db.fetch(ENTITLING, publisher_id, customer_id, offer_id, now, active)
    if not rows:
        return Access(False, None)
    ends = [access_end(_subscription(row)) for row in rows]
    if any(end is None for end in ends):
        return Access(True, None)
    return Access(True, max(end for end in ends if end is not None))


@dataclass(frozen=True)
class Filter:
    customer_id: int | None = None
    offer_id: str | None = None
    status: SubscriptionStatus | None = None
    offset: int = 0
    limit: int = 50


def _where(wanted: Filter, now: datetime) -> tuple[str, list[object]]:
    """The filter as conditions on numbered parameters: $1 is the publisher, then `values`."""
    conditions: list[str] = ["publisher_id = $1"]
    values: list[object] = []
    for column, value in (("customer_id", wanted.customer_id), ("offer_id", wanted.offer_id)):
        if value is not None:
            values.append(value)
            conditions.append(f"{column} = ${len(values) + 1}")
    if wanted.status is not None:
        condition, more = status_sql(wanted.status, now, len(values) + 2)
        conditions.append(condition)
        values += more
    return " AND ".join(conditions), values


async def page(
    db: Executor, publisher_id: int, wanted: Filter, now: datetime
) -> tuple[list[Subscription], int]:
    """One page of the publisher's subscriptions, oldest first, and how many match in all."""
    where, values = _where(wanted, now)
    n = len(values) + 2
    listed = f"{_SELECT} WHERE {where} ORDER BY id OFFSET ${n} LIMIT ${n + 1}"
    counted = f"SELECT count(*) FROM subscriptions WHERE {where}"  # noqa: S608
    rows = await db.fetch(listed, publisher_id, *values, wanted.offset, wanted.limit)
    total = await db.fetchval(counted, publisher_id, *values)
    return [_subscription(row) for row in rows], int(total)
