"""The `synchronizations` table: its one writer and its readers, and the reads a sync needs.

A register is one statement, one round trip, with no transaction around it: the checks (the
integration, the app asked for, the customer, the purchase a known transaction belongs to, a
replayed id, and for a customer token its recent failures), then the sync and its job, only if
they pass. A finalize locks the sync row (`lock`) and writes it back
(`save`) in its job's transaction.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from app.apple.gateway import FIELDS as APP_FIELDS
from app.callers import CallerKind
from app.db import Executor, Row
from app.enums import (
    JobKind,
    NotificationStatus,
    Ownership,
    SubscriptionStatus,
    SyncKind,
    SyncResult,
    SyncStatus,
)
from app.jobs.queue import insert_jobs, parse_count


@dataclass(slots=True)
class Sync:
    """A row of `synchronizations`: one register or transfer of a purchase, from the 202 to its
    result."""

    publisher_id: int
    id: str
    kind: SyncKind
    caller: CallerKind
    bundle_id: str | None
    transaction_id: str
    purchase_key: str | None
    customer_id: int
    ip_address: str | None
    correlation_id: str | None
    request_hash: str
    status: SyncStatus
    attempts: int
    result: SyncResult | None
    access_granted: bool | None
    offer_id: str | None
    original_transaction_id: str | None
    subscription_id: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    # What Apple signed about the purchase, verified and decoded, written when the sync finalizes;
    # read only where it is shown (the console), never with the sync itself.
    apple_data: dict[str, Any] | None = None


COLUMNS = tuple(f.name for f in fields(Sync) if f.name != "apple_data")


def _sync(row: Row) -> Sync:
    values = dict(row)
    values["kind"] = SyncKind(values["kind"])
    values["caller"] = CallerKind(values["caller"])
    values["status"] = SyncStatus(values["status"])
    result = values["result"]
    values["result"] = None if result is None else SyncResult(result)
    return Sync(**values)


# Every check of a register or transfer, each lookup served by an index: the integration, the app
# asked for, the customer, the purchase a known transaction belongs to, and a replayed id.
# $1 publisher, $2 customer, $3 transactionId, $4 the sync's id (the Correlation-Id, or a new one),
# $5 the bundleId asked for (NULL: any of the publisher's apps), $6 the start of the failures'
# window (NULL: the caller is not limited, and register_failures is not read), $7 how many
# failures in it are allowed: `limited_from` is the oldest of the newest so many plus one (NULL:
# fewer), when the caller may try again once it leaves the window.
# Each lookup has one index that fits it and no other that could serve it worse (the customer by
# its key alone): asyncpg keeps the plan PostgreSQL makes on a connection's first executions, and
# on nearly empty tables every index with publisher_id first costs the same to it.
FOUND = f"""
SELECT
  (SELECT active FROM storekit2_integrations WHERE publisher_id = $1) AS active,
  (SELECT true FROM storekit2_apps WHERE publisher_id = $1 AND bundle_id = $5) AS app,
  coalesce((SELECT publisher_id = $1 FROM customers WHERE id = $2), false) AS customer,
  (SELECT k.original FROM (
     SELECT original_transaction_id AS original FROM subscriptions
      WHERE publisher_id = $1 AND original_transaction_id = $3
        AND status <> '{SubscriptionStatus.TERMINATED}'
     UNION ALL
     SELECT original_transaction_id FROM subscriptions
      WHERE publisher_id = $1 AND latest_transaction_id = $3
     UNION ALL
     SELECT original_transaction_id FROM synchronizations
      WHERE publisher_id = $1 AND transaction_id = $3 AND original_transaction_id IS NOT NULL
   ) AS k LIMIT 1) AS original,
  (SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $4) AS replayed,
  (SELECT f.at FROM register_failures AS r, unnest(r.failed_at) AS f (at)
    WHERE $6::timestamptz IS NOT NULL AND r.publisher_id = $1 AND r.customer_id = $2
      AND f.at > $6
    ORDER BY f.at DESC OFFSET $7 LIMIT 1) AS limited_from
"""  # noqa: S608 (enum constants)


def _insert_with_job(purchase_key: str, source: str, n: int) -> str:
    """The sync and its job; nothing when the id exists already (a racing replay). Beyond FOUND's
    $1 to $5, from $n on: kind, ipAddress, request hash, now, the Correlation-Id (or NULL), the
    caller's kind. Built from constant fragments only; every value is a bind parameter."""
    kind, ip, fingerprint, now, correlation, caller = (f"${n + i}" for i in range(6))
    job = insert_jobs(
        "sync",
        kind=f"'{JobKind.SYNC}'",
        payload="jsonb_build_object('publisherId', publisher_id, 'synchronizationId', id)",
        run_at=now,
    )
    return f"""
sync AS (
  INSERT INTO synchronizations (publisher_id, id, kind, caller, bundle_id, transaction_id,
    purchase_key, customer_id, ip_address, correlation_id, request_hash, status, attempts,
    created_at, updated_at)
  SELECT $1, $4, {kind}, {caller}, $5, $3, {purchase_key}, $2, {ip}, {correlation},
    {fingerprint}, '{SyncStatus.PROCESSING}', 0, {now}, {now}
  FROM {source}
  ON CONFLICT (publisher_id, id) DO NOTHING
  RETURNING publisher_id, id
), job AS ({job})"""  # noqa: S608


PASSED = (
    "found WHERE found.active AND ($5::text IS NULL OR found.app) AND found.customer"
    " AND found.replayed IS NULL AND found.limited_from IS NULL"
)
REGISTER = f"""
WITH found AS ({FOUND}),
{_insert_with_job("found.original", PASSED, 8)}
SELECT found.*, (SELECT id FROM sync) AS inserted FROM found
"""  # noqa: S608
# A transfer checks the purchase between FOUND and the insert ($12: the purchase).
TRANSFER = f"""
WITH {_insert_with_job("$12", "(VALUES (1)) AS one", 6)}
SELECT id FROM sync
"""  # noqa: S608
REQUEST_HASH = "SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $2"


@dataclass(frozen=True)
class Failures:
    """A limit on failed registers and transfers: `limit` in any `window`."""

    limit: int
    window: timedelta


@dataclass(frozen=True)
class Request:
    """A register or transfer as the statements take it."""

    publisher_id: int
    customer_id: int
    transaction_id: str
    sync_id: str
    bundle_id: str | None
    kind: SyncKind
    caller: CallerKind
    ip_address: str | None
    fingerprint: str
    now: datetime
    correlation_id: str | None
    failures: Failures | None  # the caller's limit; None: not limited (the publisher)

    def _key(self) -> tuple[object, ...]:
        return (
            self.publisher_id,
            self.customer_id,
            self.transaction_id,
            self.sync_id,
            self.bundle_id,
        )

    def _insert(self) -> tuple[object, ...]:
        return (
            self.kind,
            self.ip_address,
            self.fingerprint,
            self.now,
            self.correlation_id,
            self.caller,
        )

    def found_arguments(self) -> tuple[object, ...]:
        """FOUND's parameters: the key, and the caller's limit."""
        since = None if self.failures is None else self.now - self.failures.window
        allowed = 0 if self.failures is None else self.failures.limit - 1
        return (*self._key(), since, allowed)

    def arguments(self) -> tuple[object, ...]:
        """REGISTER's."""
        return (*self.found_arguments(), *self._insert())

    def transfer_arguments(self, purchase: str) -> tuple[object, ...]:
        """TRANSFER's: FOUND ran before it."""
        return (*self._key(), *self._insert(), purchase)


@dataclass(frozen=True)
class Found:
    """What FOUND saw: the integration active (None: none), the app asked for the publisher's
    (None: none asked for, or not the publisher's), the customer the publisher's, the purchase the
    transaction belongs to, the request hash of a sync that has this id already, and when the
    failure that puts the caller over its limit was (None: it is not)."""

    active: bool | None
    app: bool | None
    customer: bool
    original: str | None
    replayed: str | None
    limited_from: datetime | None

    @classmethod
    def of(cls, row: Row) -> Found:
        return cls(
            row["active"],
            row["app"],
            row["customer"],
            row["original"],
            row["replayed"],
            row["limited_from"],
        )


async def register(db: Executor, request: Request) -> tuple[Found, str | None]:
    """The checks, and the sync with its job when they pass: one statement. Returns what the
    checks found and the id inserted (None: nothing was)."""
    row = await db.fetchrow(REGISTER, *request.arguments())
    assert row is not None
    return Found.of(row), row["inserted"]


async def found(db: Executor, request: Request) -> Found:
    row = await db.fetchrow(FOUND, *request.found_arguments())
    assert row is not None
    return Found.of(row)


async def insert_transfer(db: Executor, request: Request, purchase: str) -> str | None:
    inserted = await db.fetchval(TRANSFER, *request.transfer_arguments(purchase))
    return None if inserted is None else str(inserted)


async def request_hash(db: Executor, publisher_id: int, sync_id: str) -> str | None:
    value = await db.fetchval(REQUEST_HASH, publisher_id, sync_id)
    return None if value is None else str(value)


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM synchronizations"  # noqa: S608 (the model's columns)


GET = f"{_SELECT} WHERE publisher_id = $1 AND id = $2"
LOCK = f"{GET} FOR UPDATE"


async def get(db: Executor, publisher_id: int, sync_id: str) -> Sync | None:
    row = await db.fetchrow(GET, publisher_id, sync_id)
    return None if row is None else _sync(row)


async def lock(db: Executor, publisher_id: int, sync_id: str) -> Sync | None:
    """The sync row, locked until the transaction ends."""
    row = await db.fetchrow(LOCK, publisher_id, sync_id)
    return None if row is None else _sync(row)


# What finalizing may change in a sync.
SAVE = """
UPDATE synchronizations SET status = $3, result = $4, access_granted = $5, offer_id = $6,
    original_transaction_id = $7, subscription_id = $8, attempts = $9, last_error = $10,
    updated_at = $11, bundle_id = $12, apple_data = $13
WHERE publisher_id = $1 AND id = $2
"""


async def save(db: Executor, sync: Sync) -> None:
    await db.execute(
        SAVE,
        sync.publisher_id,
        sync.id,
        sync.status,
        sync.result,
        sync.access_granted,
        sync.offer_id,
        sync.original_transaction_id,
        sync.subscription_id,
        sync.attempts,
        sync.last_error,
        sync.updated_at,
        sync.bundle_id,
        None if sync.apple_data is None else json.dumps(sync.apple_data),
    )


# What a sync job reads before it asks Apple: the sync's state and transaction, whether its
# publisher's integration is on, and the apps to ask, one row each, in the order to ask them: only
# the app the register named, if it named one; else the app of the purchase the transaction is
# known to belong to first, then the others, oldest first. (No app: one row, its app columns NULL.)
LOAD = f"""
SELECT s.status, s.transaction_id, s.bundle_id AS requested, i.active,
  {", ".join(f"a.{name}" for name in APP_FIELDS)}
FROM synchronizations AS s
LEFT JOIN storekit2_integrations AS i ON i.publisher_id = s.publisher_id
LEFT JOIN storekit2_apps AS a ON a.publisher_id = s.publisher_id
  AND (s.bundle_id IS NULL OR a.bundle_id = s.bundle_id)
WHERE s.publisher_id = $1 AND s.id = $2
ORDER BY (a.bundle_id = (
    SELECT max(bundle_id) FROM subscriptions
    WHERE original_transaction_id = s.purchase_key AND publisher_id = s.publisher_id
  )) IS TRUE DESC, a.created_at, a.bundle_id
"""  # noqa: S608


async def load(db: Executor, publisher_id: int, sync_id: str) -> list[Row]:
    """LOAD's rows; none when the sync is gone."""
    return list(await db.fetch(LOAD, publisher_id, sync_id))


# After the purchase's lock: the product's offer, whether notifications wait for this sync, the
# publisher's ownership policy, and the claiming customer's appAccountToken ($4: the customer).
SETTLING = f"""
SELECT
  (SELECT offer_id FROM offer_products
    WHERE publisher_id = $1 AND product_id = $2) AS offer_id,
  EXISTS (SELECT 1 FROM apple_notifications
    WHERE publisher_id = $1 AND original_transaction_id = $3
      AND status = '{NotificationStatus.PENDING}') AS waiting,
  (SELECT ownership FROM storekit2_integrations WHERE publisher_id = $1) AS ownership,
  (SELECT app_account_token FROM customers WHERE id = $4) AS app_account_token
"""  # noqa: S608


@dataclass(frozen=True)
class Settling:
    """What a finalize reads under the purchase's lock."""

    offer_id: str | None
    waiting: bool  # notifications about the purchase wait for this sync
    ownership: Ownership
    app_account_token: uuid.UUID | None  # the sync's customer's


async def settling(
    db: Executor, publisher_id: int, product_id: str, original: str, customer_id: int
) -> Settling:
    row = await db.fetchrow(SETTLING, publisher_id, product_id, original, customer_id)
    assert row is not None
    offer_id, ownership = row["offer_id"], row["ownership"]
    return Settling(
        offer_id=None if offer_id is None else str(offer_id),
        waiting=bool(row["waiting"]),
        ownership=Ownership.TRANSFER if ownership is None else Ownership(ownership),
        app_account_token=row["app_account_token"],
    )


# A customer token's failed register or transfer ($3: when): kept with the newest others still in
# the window ($4: its start), at most as many as the limit ($5) looks at.
RECORD_FAILURE = """
INSERT INTO register_failures AS r (publisher_id, customer_id, failed_at)
VALUES ($1, $2, ARRAY[$3::timestamptz])
ON CONFLICT (publisher_id, customer_id) DO UPDATE SET failed_at = ARRAY(
  SELECT f.at FROM unnest(r.failed_at || $3::timestamptz) AS f (at)
  WHERE f.at > $4 ORDER BY f.at DESC LIMIT $5)
"""


async def record_failure(
    db: Executor, publisher_id: int, customer_id: int, now: datetime, failures: Failures
) -> None:
    since = now - failures.window
    await db.execute(RECORD_FAILURE, publisher_id, customer_id, now, since, failures.limit)


async def count_unfinalized(db: Executor) -> dict[str, int]:
    """For /metrics: syncs not finalized yet, by status."""
    statement = f"""
    SELECT status, count(*) AS n FROM synchronizations
    WHERE status <> '{SyncStatus.FINALIZED}' GROUP BY status
    """  # noqa: S608
    return {str(r["status"]): int(r["n"]) for r in await db.fetch(statement)}


# Retention: finalized syncs older than a cutoff, a batch at a time. No index leads with the time
# (one would cost every register): the oldest rows sit first in the table, so a scan finds a batch
# of them quickly, and a pass with nothing to delete reads the table once.
PURGE_FINALIZED = f"""
DELETE FROM synchronizations WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM synchronizations
    WHERE status = '{SyncStatus.FINALIZED}' AND updated_at < $1
    LIMIT $2
))
"""  # noqa: S608


async def purge_finalized(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_FINALIZED, before, limit))


# The failures of customer tokens that have failed nothing since the cutoff (retention).
PURGE_FAILURES = """
DELETE FROM register_failures WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM register_failures
    WHERE (SELECT max(f.at) FROM unnest(failed_at) AS f (at)) < $1
    LIMIT $2
))
"""


async def purge_failures(db: Executor, before: datetime, limit: int) -> int:
    return parse_count(await db.execute(PURGE_FAILURES, before, limit))
