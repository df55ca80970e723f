"""The `synchronizations` table: its one writer and its readers, and the reads a sync needs.

A register is one statement, one round trip, with no transaction around it: the checks (the
integration, the customer, the purchase a known transaction belongs to, a replayed id), then the
sync and its job, only if they pass. A finalize locks the sync row (`lock`) and writes it back
(`save`) in its job's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from app.apple.gateway import FIELDS as INTEGRATION_FIELDS
from app.db import Executor, Row
from app.enums import (
    JobKind,
    NotificationStatus,
    SubscriptionStatus,
    SyncKind,
    SyncResult,
    SyncStatus,
)
from app.jobs.queue import insert_jobs


@dataclass(slots=True)
class Sync:
    """A row of `synchronizations`: one register or transfer of a purchase, from the 202 to its
    result."""

    publisher_id: int
    id: str
    kind: SyncKind
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
    values["status"] = SyncStatus(values["status"])
    result = values["result"]
    values["result"] = None if result is None else SyncResult(result)
    return Sync(**values)


# Every check of a register or transfer, each lookup served by an index: the integration, the
# customer, the purchase a known transaction belongs to, and a replayed id.
# $1 publisher, $2 customer, $3 transactionId, $4 the sync's id (the Correlation-Id, or a new one).
# Each lookup has one index that fits it and no other that could serve it worse (the customer by
# its key alone): asyncpg keeps the plan PostgreSQL makes on a connection's first executions, and
# on nearly empty tables every index with publisher_id first costs the same to it.
FOUND = f"""
SELECT
  (SELECT active FROM storekit2_integrations WHERE publisher_id = $1) AS active,
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
  (SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $4) AS replayed
"""  # noqa: S608 (enum constants)


def _insert_with_job(purchase_key: str, source: str) -> str:
    """The sync and its job; nothing when the id exists already (a racing replay). Beyond FOUND's:
    $5 kind, $6 ipAddress, $7 request hash, $8 now, $9 the Correlation-Id (or NULL). Built from
    constant fragments only; every value is a bind parameter."""
    job = insert_jobs(
        "sync",
        kind=f"'{JobKind.SYNC}'",
        payload="jsonb_build_object('publisherId', publisher_id, 'synchronizationId', id)",
        run_at="$8",
    )
    return f"""
sync AS (
  INSERT INTO synchronizations (publisher_id, id, kind, transaction_id, purchase_key,
    customer_id, ip_address, correlation_id, request_hash, status, attempts, created_at,
    updated_at)
  SELECT $1, $4, $5, $3, {purchase_key}, $2, $6, $9, $7, '{SyncStatus.PROCESSING}', 0, $8, $8
  FROM {source}
  ON CONFLICT (publisher_id, id) DO NOTHING
  RETURNING publisher_id, id
), job AS ({job})"""  # noqa: S608


REGISTER = f"""
WITH found AS ({FOUND}),
{_insert_with_job("found.original", "found WHERE found.active AND found.customer AND found.replayed IS NULL")}
SELECT found.*, (SELECT id FROM sync) AS inserted FROM found
"""  # noqa: S608
# A transfer checks the purchase between FOUND and the insert ($10: the purchase).
TRANSFER = f"""
WITH {_insert_with_job("$10", "(VALUES (1)) AS one")}
SELECT id FROM sync
"""  # noqa: S608
REQUEST_HASH = "SELECT request_hash FROM synchronizations WHERE publisher_id = $1 AND id = $2"


@dataclass(frozen=True)
class Request:
    """A register or transfer as the statements take it."""

    publisher_id: int
    customer_id: int
    transaction_id: str
    sync_id: str
    kind: SyncKind
    ip_address: str | None
    fingerprint: str
    now: datetime
    correlation_id: str | None

    def arguments(self) -> tuple[object, ...]:
        return (
            self.publisher_id,
            self.customer_id,
            self.transaction_id,
            self.sync_id,
            self.kind,
            self.ip_address,
            self.fingerprint,
            self.now,
            self.correlation_id,
        )


@dataclass(frozen=True)
class Found:
    """What FOUND saw: the integration active (None: none), the customer the publisher's, the
    purchase the transaction belongs to, the request hash of a sync that has this id already."""

    active: bool | None
    customer: bool
    original: str | None
    replayed: str | None

    @classmethod
    def of(cls, row: Row) -> Found:
        return cls(row["active"], row["customer"], row["original"], row["replayed"])


async def register(db: Executor, request: Request) -> tuple[Found, str | None]:
    """The checks, and the sync with its job when they pass: one statement. Returns what the
    checks found and the id inserted (None: nothing was)."""
    row = await db.fetchrow(REGISTER, *request.arguments())
    assert row is not None
    return Found.of(row), row["inserted"]


async def found(db: Executor, request: Request) -> Found:
    row = await db.fetchrow(FOUND, *request.arguments()[:4])
    assert row is not None
    return Found.of(row)


async def insert_transfer(db: Executor, request: Request, purchase: str) -> str | None:
    inserted = await db.fetchval(TRANSFER, *request.arguments(), purchase)
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
    updated_at = $11, apple_data = $12
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
        None if sync.apple_data is None else json.dumps(sync.apple_data),
    )


# What a sync job reads before it asks Apple: the sync's state and transaction, and its
# publisher's integration (all NULL when there is none).
LOAD = f"""
SELECT s.status, s.transaction_id, i.active, {", ".join(f"i.{name}" for name in INTEGRATION_FIELDS)}
FROM synchronizations AS s
LEFT JOIN storekit2_integrations AS i ON i.publisher_id = s.publisher_id
WHERE s.publisher_id = $1 AND s.id = $2
"""  # noqa: S608


async def load(db: Executor, publisher_id: int, sync_id: str) -> Row | None:
    return await db.fetchrow(LOAD, publisher_id, sync_id)


# After the purchase's lock: the product's offer, and whether notifications wait for this sync.
OFFER_AND_WAITING = f"""
SELECT
  (SELECT offer_id FROM offer_products
    WHERE publisher_id = $1 AND product_id = $2) AS offer_id,
  EXISTS (SELECT 1 FROM apple_notifications
    WHERE publisher_id = $1 AND original_transaction_id = $3
      AND status = '{NotificationStatus.PENDING}') AS waiting
"""  # noqa: S608


async def offer_and_waiting(
    db: Executor, publisher_id: int, product_id: str, original: str
) -> tuple[str | None, bool]:
    row = await db.fetchrow(OFFER_AND_WAITING, publisher_id, product_id, original)
    assert row is not None
    offer_id = row["offer_id"]
    return (None if offer_id is None else str(offer_id)), bool(row["waiting"])


async def count_unfinalized(db: Executor) -> dict[str, int]:
    """For /metrics: syncs not finalized yet, by status."""
    statement = f"""
    SELECT status, count(*) AS n FROM synchronizations
    WHERE status <> '{SyncStatus.FINALIZED}' GROUP BY status
    """  # noqa: S608
    return {str(r["status"]): int(r["n"]) for r in await db.fetch(statement)}
