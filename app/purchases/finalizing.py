"""The transaction that finalizes a sync, on its session's own asyncpg connection.

It is the service's hottest transaction. Through the ORM each of its statements cost about half a
millisecond of CPU, a third of a sync's; here they go to asyncpg directly, in the session's
transaction. The session opens that transaction with the purchase's lock, and the one rare branch
that needs the ORM (notifications that waited for this purchase, `apply_pending`) runs in it too,
after these writes, reading them from the database.

The sync row and the purchase's current subscription are loaded as plain `Synchronization` and
`Subscription` objects that no session tracks: the rules in `ownership` change them, `save_*`
writes them. The events are collected and written in one statement when the rules are done, with
their deliveries and their jobs held for this process (`app.webhooks.fanout.emit_held`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Subscription, Synchronization, table
from app.webhooks.events import require_topic
from app.webhooks.fanout import HeldDelivery, emit_held

SYNC_COLUMNS = tuple(column.name for column in table(Synchronization).columns)
SUBSCRIPTION_COLUMNS = tuple(column.name for column in table(Subscription).columns)
# What a subscription is written with: all but its id, which the database gives. These
# statements skip the models' defaults: tests/sync/test_finalizing.py makes sure there are none
# that the rules do not set.
WRITTEN = tuple(name for name in SUBSCRIPTION_COLUMNS if name != "id")
# The statements below name the models' own columns, nothing from outside (hence the noqa).

LOCK_SYNC = f"""
SELECT {", ".join(SYNC_COLUMNS)} FROM synchronizations
WHERE publisher_id = $1 AND id = $2
FOR UPDATE
"""  # noqa: S608

# What the rules may change in a sync (`ownership._finish`, `_grant`, `sync._transient`).
SAVE_SYNC = """
UPDATE synchronizations SET status = $3, result = $4, access_granted = $5, offer_id = $6,
    original_transaction_id = $7, subscription_id = $8, attempts = $9, last_error = $10,
    updated_at = $11
WHERE publisher_id = $1 AND id = $2
"""

CURRENT_SUBSCRIPTION = f"""
SELECT {", ".join(SUBSCRIPTION_COLUMNS)} FROM subscriptions
WHERE publisher_id = $1 AND original_transaction_id = $2 AND status <> 'terminated'
FOR UPDATE
"""  # noqa: S608

INSERT_SUBSCRIPTION = f"""
INSERT INTO subscriptions ({", ".join(WRITTEN)})
VALUES ({", ".join(f"${n}" for n in range(1, len(WRITTEN) + 1))})
RETURNING id
"""  # noqa: S608

SAVE_SUBSCRIPTION = f"""
UPDATE subscriptions SET {", ".join(f"{name} = ${n}" for n, name in enumerate(WRITTEN, 2))}
WHERE id = $1
"""  # noqa: S608

# After the purchase's lock: the product's offer, and whether notifications wait for this sync.
OFFER_AND_WAITING = """
SELECT
  (SELECT offer_id FROM offer_products
    WHERE publisher_id = $1 AND product_id = $2) AS offer_id,
  EXISTS (SELECT 1 FROM apple_notifications
    WHERE publisher_id = $1 AND original_transaction_id = $3 AND status = $4) AS waiting
"""


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under `session`, whose transaction must already be open."""
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    if not driver.is_in_transaction():  # its statements would each commit on their own
        raise RuntimeError("open the session's transaction first")
    return driver


@dataclass
class Finalizing:
    """One finalizing transaction: its connection, its clock reading, the events it will write."""

    connection: asyncpg.Connection
    publisher_id: int
    now: datetime
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def lock_sync(self, sync_id: str) -> Synchronization | None:
        row = await self.connection.fetchrow(LOCK_SYNC, self.publisher_id, sync_id)
        return None if row is None else Synchronization(**dict(row))

    async def save_sync(self, sync: Synchronization) -> None:
        await self.connection.execute(
            SAVE_SYNC,
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
        )

    async def offer_and_waiting(
        self, product_id: str, original: str, pending: str
    ) -> tuple[str | None, bool]:
        row = await self.connection.fetchrow(
            OFFER_AND_WAITING, self.publisher_id, product_id, original, pending
        )
        assert row is not None
        offer_id = row["offer_id"]
        return (None if offer_id is None else str(offer_id)), bool(row["waiting"])

    async def current_subscription(self, original: str) -> Subscription | None:
        """The purchase's one subscription that is not terminated, locked."""
        row = await self.connection.fetchrow(CURRENT_SUBSCRIPTION, self.publisher_id, original)
        return None if row is None else Subscription(**dict(row))

    async def insert_subscription(self, subscription: Subscription) -> None:
        values = [getattr(subscription, name) for name in WRITTEN]
        subscription.id = await self.connection.fetchval(INSERT_SUBSCRIPTION, *values)

    async def save_subscription(self, subscription: Subscription) -> None:
        values = [getattr(subscription, name) for name in WRITTEN]
        await self.connection.execute(SAVE_SUBSCRIPTION, subscription.id, *values)

    def emit(self, topic: str, data: dict[str, Any]) -> None:
        """An event of this transaction, written by `write_events` in the order emitted."""
        require_topic(topic)
        self.events.append((topic, data))

    async def write_events(
        self, synchronization_id: str, lease: tuple[str, datetime]
    ) -> list[HeldDelivery]:
        events, self.events = self.events, []
        return await emit_held(
            self.connection, self.publisher_id, events, synchronization_id, self.now, lease
        )
