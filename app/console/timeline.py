"""A customer's or a purchase's story, newest first: syncs and what Apple said to them, what Apple
sent, subscriptions, and webhook events with every delivery and its attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.console import repository
from app.console.readable import Section, notification_sections, payload, sync_sections
from app.db import Executor, Row


class Kind(StrEnum):
    SYNC = "sync"
    NOTIFICATION = "notification"
    SUBSCRIPTION = "subscription"
    EVENT = "event"


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Delivery:
    row: Row
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        """Attempts made but not listed (only the newest are)."""
        return max(int(self.row["attempts"]) - len(self.attempts), 0)


@dataclass
class Entry:
    at: datetime
    kind: Kind
    row: Row
    sections: list[Section] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    text: str = ""  # an event's data, indented


@dataclass
class Timeline:
    subscriptions: list[Row]
    entries: list[Entry]
    purchases: list[str]  # their originalTransactionIds, newest first
    customers: list[int]  # every customer the purchases had

    def counts(self) -> dict[Kind, int]:
        found = dict.fromkeys(Kind, 0)
        for entry in self.entries:
            found[entry.kind] += 1
        return found


def _unique(values: Sequence[Any]) -> list[Any]:
    return [v for v in dict.fromkeys(values) if v is not None]


async def _deliveries(db: Executor, event_ids: list[int]) -> dict[int, list[Delivery]]:
    rows = await repository.deliveries(db, event_ids)
    attempts: dict[int, list[Attempt]] = {}
    for a in await repository.attempts(db, [r["id"] for r in rows]):
        tried = Attempt(a["attempted_at"], a["status_code"], a["error"], a["duration_ms"])
        attempts.setdefault(a["delivery_id"], []).append(tried)
    by_event: dict[int, list[Delivery]] = {}
    for row in rows:
        delivery = Delivery(row, attempts.get(row["id"], []))
        by_event.setdefault(row["event_id"], []).append(delivery)
    return by_event


async def _events(
    db: Executor, publisher_id: int, sync_ids: list[str], subscription_ids: list[int]
) -> list[Entry]:
    events = await repository.events(db, publisher_id, sync_ids, subscription_ids)
    deliveries = await _deliveries(db, [e["id"] for e in events])
    return [
        Entry(
            e["created_at"],
            Kind.EVENT,
            e,
            deliveries=deliveries.get(e["id"], []),
            text=payload(e["payload"]),
        )
        for e in events
    ]


async def _assemble(
    db: Executor, publisher_id: int, syncs: list[Row], subscriptions: list[Row]
) -> Timeline:
    purchases = _unique(
        [b["original_transaction_id"] for b in subscriptions]
        + [s["original_transaction_id"] for s in syncs]
    )
    notes = await repository.notifications(db, publisher_id, purchases)
    entries = [Entry(s["created_at"], Kind.SYNC, s, sync_sections(s["apple_data"])) for s in syncs]
    entries += [
        Entry(
            n["received_at"],
            Kind.NOTIFICATION,
            n,
            notification_sections(n["transaction_info"], n["renewal_info"], n["apple_status"]),
        )
        for n in notes
    ]
    entries += [Entry(b["created_at"], Kind.SUBSCRIPTION, b) for b in subscriptions]
    subscription_ids = [b["id"] for b in subscriptions] + [s["subscription_id"] for s in syncs]
    sync_ids = [s["id"] for s in syncs]
    entries += await _events(db, publisher_id, sync_ids, _unique(subscription_ids))
    order = {Kind.EVENT: 0, Kind.SUBSCRIPTION: 1, Kind.NOTIFICATION: 2, Kind.SYNC: 3}
    entries.sort(key=lambda e: (e.at, -order[e.kind]), reverse=True)
    customers = _unique(
        [b["customer_id"] for b in subscriptions] + [s["customer_id"] for s in syncs]
    )
    return Timeline(subscriptions, entries, purchases, customers)


async def of_customer(db: Executor, publisher_id: int, customer_id: int) -> Timeline:
    syncs = await repository.customer_syncs(db, publisher_id, customer_id)
    subscriptions = await repository.customer_subscriptions(db, publisher_id, customer_id)
    return await _assemble(db, publisher_id, syncs, subscriptions)


async def of_purchase(db: Executor, publisher_id: int, original: str) -> Timeline:
    syncs = await repository.purchase_syncs(db, publisher_id, original)
    subscriptions = await repository.purchase_subscriptions(db, publisher_id, original)
    return await _assemble(db, publisher_id, syncs, subscriptions)


async def of_sync(db: Executor, sync: Row) -> list[Entry]:
    """The sync's own events, with their deliveries."""
    return await _events(db, sync["publisher_id"], [sync["id"]], [])
