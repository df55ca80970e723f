"""Retention of the webhook tables: settled deliveries, their attempts and their events go when
old; a pending delivery stays, and so does its event."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from app.clock import MovableClock
from app.retention import service
from tests.helpers.api import PublisherRef
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.webhooks import context_of, deliveries, drain, emit_event, subscribe


async def test_old_settled_deliveries_go_with_their_attempts_and_events(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["kept"])
    clock.advance(-100 * 86_400)
    await emit_event(app, publisher.id)  # delivered long ago
    receiver["kept"].replies.append(Reply(500))
    await emit_event(app, publisher.id)  # failed once long ago, still pending
    await drain(app)
    clock.advance(100 * 86_400)
    db = context_of(app).db
    deleted = await service.purge(db, clock.now() - timedelta(days=90))
    assert deleted["webhook deliveries"] >= 1 and deleted["webhook events"] >= 1
    (left,) = await deliveries(app, publisher.id)
    assert left.status == "pending", "a pending delivery is never deleted"
    attempts = await db.fetchval(
        "SELECT count(*) FROM webhook_delivery_attempts a JOIN webhook_deliveries d"
        " ON d.id = a.delivery_id WHERE d.publisher_id = $1",
        publisher.id,
    )
    assert attempts == 1, "the attempts of the deleted delivery went with it"
    events = await db.fetchval(
        "SELECT count(*) FROM webhook_events WHERE publisher_id = $1", publisher.id
    )
    assert events == 1, "the pending delivery's event stays"
