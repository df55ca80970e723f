"""Writing webhook events: the one way the rest of the service tells a publisher's webhooks.

The events of one cause (a sync, a notification) are written by one statement, in the transaction
that made them, with one delivery per active endpoint of each topic. The deliveries to one URL form
a chain (docs/api.md §5's order): the first gets its job at once, each next one when the one before it had
its first attempt. A caller that will send the deliveries itself right after its commit (a job
handler: so a sync's webhooks leave without a trip through the queue) asks for them to be *held*:
the jobs are written leased to it, so no worker takes them meanwhile; if the caller dies, the lease
runs out and a worker goes on as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.db import Executor
from app.subscriptions.events import Event
from app.webhooks import repository


@dataclass(frozen=True)
class HeldDelivery:
    """A delivery written for the caller to send, with what it takes to send it; its job is
    leased to the caller (None while it waits for the one before it to the same URL)."""

    job_id: int | None
    delivery_id: int
    endpoint_id: int
    publisher_id: int
    topic: str
    url: str
    webhook_id: str
    secret_encrypted: bytes
    data: dict[str, Any]


def lease_for(now: datetime, webhook_timeout: float) -> datetime:
    """How long a held delivery's job stays leased: its whole attempt, and then some."""
    return now + timedelta(seconds=webhook_timeout + 30.0)


async def write(
    db: Executor,
    publisher_id: int,
    events: list[Event],
    now: datetime,
    hold: tuple[str, datetime] | None = None,
) -> list[HeldDelivery]:
    """Write `events` in order; with `hold` (holder, until), return their deliveries, held.
    Without it the deliveries are any worker's: wake the workers after the commit."""
    if not events:
        return []
    rows = [(e.topic.value, e.data, e.synchronization_id) for e in events]
    written = await repository.write_events(db, publisher_id, rows, now, hold)
    if hold is None:
        return []
    return [
        HeldDelivery(
            job_id=w.job_id,
            delivery_id=w.delivery_id,
            endpoint_id=w.endpoint_id,
            publisher_id=publisher_id,
            topic=w.topic,
            url=w.url,
            webhook_id=w.webhook_id,
            secret_encrypted=w.secret_encrypted,
            data=events[w.event_index].data,
        )
        for w in written
    ]
