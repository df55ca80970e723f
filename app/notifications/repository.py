"""The `apple_notifications` table: Apple's notifications as received (posted by Apple or
recovered from its history), and what each did; and `apple_test_notifications`, the test
notifications operators asked Apple for.

Stored once per publisher and `notificationUUID`, with its job when it has something to apply, in
one statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db import Executor, Row
from app.enums import JobKind, NotificationSource, NotificationStatus
from app.jobs.queue import insert_jobs, parse_count

COLUMNS = (
    "id, publisher_id, notification_uuid, notification_type, subtype, environment,"
    " original_transaction_id, transaction_id, signed_at, received_at, status, outcome,"
    " subscription_id, applied_at, apple_status, transaction_info, renewal_info, source"
)


@dataclass(frozen=True)
class NewNotification:
    publisher_id: int
    notification_uuid: str
    notification_type: str
    subtype: str | None
    environment: str | None
    original_transaction_id: str | None
    transaction_id: str | None
    signed_at: datetime
    received_at: datetime
    status: NotificationStatus
    outcome: str | None
    applied_at: datetime | None
    apple_status: int | None
    transaction_info: dict[str, Any] | None
    renewal_info: dict[str, Any] | None
    signed_payload: str
    source: NotificationSource


_NEW_FIELDS = tuple(NewNotification.__dataclass_fields__)

# Insert once per (publisher, notificationUUID), with the job that applies it when it is pending.
STORE = f"""
WITH note AS (
    INSERT INTO apple_notifications ({", ".join(_NEW_FIELDS)})
    VALUES ({", ".join(f"${n}" for n in range(1, len(_NEW_FIELDS) + 1))})
    ON CONFLICT (publisher_id, notification_uuid) DO NOTHING
    RETURNING id, publisher_id, status, received_at
), job AS (
    {
    insert_jobs(
        f"note WHERE status = '{NotificationStatus.PENDING}'",
        kind=f"'{JobKind.APPLE_NOTIFICATION}'",
        payload="jsonb_build_object('publisherId', publisher_id, 'notificationId', id)",
        run_at="received_at",
    )
}
)
SELECT id FROM note
"""  # noqa: S608 (the dataclass's fields and enum constants)


def _value(new: NewNotification, name: str) -> object:
    value = getattr(new, name)
    return (
        json.dumps(value)
        if name in ("transaction_info", "renewal_info") and value is not None
        else value
    )


async def store(db: Executor, new: NewNotification) -> int | None:
    """Store the notification (and its job); None when this UUID was stored already."""
    found = await db.fetchval(STORE, *(_value(new, name) for name in _NEW_FIELDS))
    return None if found is None else int(found)


KNOWN = """
SELECT notification_uuid FROM apple_notifications
WHERE publisher_id = $1 AND notification_uuid = ANY($2::text[])
"""


async def known(db: Executor, publisher_id: int, uuids: list[str]) -> set[str]:
    """Which of these notificationUUIDs the publisher has stored already."""
    if not uuids:
        return set()
    return {str(row["notification_uuid"]) for row in await db.fetch(KNOWN, publisher_id, uuids)}


RECEIVED_AT = """
SELECT received_at FROM apple_notifications WHERE publisher_id = $1 AND notification_uuid = $2
"""


async def received_at(db: Executor, publisher_id: int, notification_uuid: str) -> datetime | None:
    found = await db.fetchval(RECEIVED_AT, publisher_id, notification_uuid)
    return found if isinstance(found, datetime) else None


@dataclass(frozen=True)
class Stored:
    """A stored notification, as applying it needs it."""

    id: int
    publisher_id: int
    notification_uuid: str
    notification_type: str
    status: NotificationStatus
    original_transaction_id: str | None
    transaction_id: str | None
    signed_at: datetime
    apple_status: int | None
    transaction_info: dict[str, Any] | None
    renewal_info: dict[str, Any] | None


def _json(value: object) -> dict[str, Any] | None:
    return None if value is None else dict(json.loads(str(value)))


def _stored(row: Row) -> Stored:
    return Stored(
        id=row["id"],
        publisher_id=row["publisher_id"],
        notification_uuid=row["notification_uuid"],
        notification_type=row["notification_type"],
        status=NotificationStatus(row["status"]),
        original_transaction_id=row["original_transaction_id"],
        transaction_id=row["transaction_id"],
        signed_at=row["signed_at"],
        apple_status=row["apple_status"],
        transaction_info=_json(row["transaction_info"]),
        renewal_info=_json(row["renewal_info"]),
    )


PURCHASE_OF = """
SELECT original_transaction_id FROM apple_notifications WHERE id = $1 AND publisher_id = $2
"""


async def purchase_of(db: Executor, publisher_id: int, notification_id: int) -> str | None:
    value = await db.fetchval(PURCHASE_OF, notification_id, publisher_id)
    return None if value is None else str(value)


LOCK = f"SELECT {COLUMNS} FROM apple_notifications WHERE id = $1 FOR UPDATE"  # noqa: S608


async def lock(db: Executor, notification_id: int) -> Stored | None:
    row = await db.fetchrow(LOCK, notification_id)
    return None if row is None else _stored(row)


WAITING = f"""
SELECT {COLUMNS} FROM apple_notifications
WHERE publisher_id = $1 AND original_transaction_id = $2 AND status = '{NotificationStatus.PENDING}'
ORDER BY signed_at, id
FOR UPDATE
"""  # noqa: S608


async def waiting(db: Executor, publisher_id: int, original: str) -> list[Stored]:
    """The purchase's pending notifications, oldest first, locked."""
    return [_stored(row) for row in await db.fetch(WAITING, publisher_id, original)]


SAVE_RESULT = """
UPDATE apple_notifications SET status = $2, outcome = $3, subscription_id = $4, applied_at = $5
WHERE id = $1
"""


async def save_result(
    db: Executor,
    notification_id: int,
    status: NotificationStatus,
    outcome: str,
    subscription_id: int | None,
    applied_at: datetime | None,
) -> None:
    await db.execute(SAVE_RESULT, notification_id, status, outcome, subscription_id, applied_at)


async def newest(
    db: Executor, publisher_id: int, status: NotificationStatus | None, limit: int
) -> list[Row]:
    """The publisher's notifications, newest first."""
    statement = f"""
    SELECT {COLUMNS} FROM apple_notifications
    WHERE publisher_id = $1 AND ($2::text IS NULL OR status = $2)
    ORDER BY id DESC LIMIT $3
    """  # noqa: S608
    return list(await db.fetch(statement, publisher_id, status, limit))


SAVE_TEST = """
INSERT INTO apple_test_notifications (publisher_id, token, bundle_id, environment, requested_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (publisher_id, token) DO NOTHING
"""


async def save_test(
    db: Executor, publisher_id: int, token: str, bundle_id: str, environment: str, now: datetime
) -> None:
    """Remember which app and environment a test notification's token belongs to."""
    await db.execute(SAVE_TEST, publisher_id, token, bundle_id, environment, now)


REQUESTED_TEST = """
SELECT publisher_id, token, bundle_id, environment, requested_at FROM apple_test_notifications
WHERE publisher_id = $1 AND token = $2
"""


async def requested_test(db: Executor, publisher_id: int, token: str) -> Row | None:
    return await db.fetchrow(REQUESTED_TEST, publisher_id, token)


PURGE_TESTS = """
DELETE FROM apple_test_notifications WHERE (publisher_id, token) IN (
    SELECT publisher_id, token FROM apple_test_notifications WHERE requested_at < $1 LIMIT $2
)
"""


async def purge_tests(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_TESTS, before, limit))


# Retention: notifications applied, ignored or stored only, older than a cutoff; never a pending one.
PURGE_DONE = f"""
DELETE FROM apple_notifications WHERE id = ANY(ARRAY(
    SELECT id FROM apple_notifications
    WHERE status <> '{NotificationStatus.PENDING}' AND received_at < $1
    ORDER BY id LIMIT $2
))
"""  # noqa: S608


async def purge_done(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_DONE, before, limit))
