"""Held deliveries: a sync sends its own webhooks right after its commit, never losing one.

Their jobs are written leased to the sender, so no worker takes them meanwhile; a sender that
dies leaves them to the workers once the lease runs out, and one that cannot reach the endpoint's
origin at once hands them to the queue.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.enums import Topic
from app.subscriptions.events import Event
from app.webhooks import delivery as delivery_module
from app.webhooks import outbox
from app.webhooks.outbox import HeldDelivery
from tests.helpers.api import PublisherRef
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.webhooks import TOPIC, context_of, deliveries, drain, job_run_at, subscribe


async def _emit_held(app: FastAPI, publisher_id: int, count: int = 1) -> list[HeldDelivery]:
    """Events written as a job handler writes them: their deliveries held for this process."""
    context = context_of(app)
    now = context.clock.now()
    events = [Event(Topic(TOPIC), {"n": n}) for n in range(count)]
    async with context.db.transaction() as tx:
        return await outbox.write(tx, publisher_id, events, now, context.webhooks.hold(now))


async def deliver_held(app: FastAPI, held: list[HeldDelivery]) -> None:
    await context_of(app).webhooks.deliver_held(held)


async def test_held_deliveries_go_out_after_commit_without_the_queue(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await subscribe(client, publisher, receiver, ["held-a", "held-b"])
    held = await _emit_held(app, publisher.id, count=2)
    assert [h.url for h in held] == [receiver.url(n) for n in ("held-a", "held-b")] * 2
    assert await drain(app) == 0, "held jobs are not the workers' to take"
    await deliver_held(app, held)
    for name in ("held-a", "held-b"):
        assert [body["data"]["n"] for body in receiver[name].verified()] == [0, 1]
    settled = await deliveries(app, publisher.id)
    assert [(d.status, d.attempts) for d in settled] == [("succeeded", 1)] * 4
    assert all([await job_run_at(app, d.id) == [] for d in settled])


async def test_held_deliveries_of_a_sender_that_died_go_out_when_the_lease_ends(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["orphan"])
    await _emit_held(app, publisher.id)  # and the sender dies before sending
    assert await drain(app) == 0
    clock.advance(context_of(app).settings.webhook_timeout + 31)
    assert await drain(app) == 1
    assert len(receiver["orphan"].verified()) == 1
    ((status, attempts),) = [(d.status, d.attempts) for d in await deliveries(app, publisher.id)]
    assert (status, attempts) == ("succeeded", 1)


async def test_a_held_delivery_without_a_free_slot_goes_to_the_queue(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await subscribe(client, publisher, receiver, ["busy"])
    (held,) = await _emit_held(app, publisher.id)
    origin = httpx.URL(held.url).netloc.decode("ascii")
    monkeypatch.setattr(delivery_module, "HELD_SLOT_WAIT", 0.05)
    slots = context_of(app).webhooks.slots
    taken = [slots.try_acquire(origin) for _ in range(delivery_module.MAX_IN_FLIGHT_PER_ORIGIN)]
    assert all(taken)
    try:
        await deliver_held(app, [held])
    finally:
        for _ in taken:
            slots.release(origin)
    assert receiver["busy"].verified() == []
    assert await drain(app) == 1, "handed back: any worker may take it at once"
    assert len(receiver["busy"].verified()) == 1


async def test_a_slot_freed_while_waiting_lets_the_held_delivery_go() -> None:
    origin = "127.0.0.1:1"
    limited = delivery_module.OriginSlots(1)
    assert limited.try_acquire(origin)
    waiting = asyncio.create_task(limited.acquire(origin, 5.0))
    async with asyncio.timeout(5):
        while origin not in limited._waiters:  # noqa: ASYNC110 (until it waits for a slot)
            await asyncio.sleep(0)
    assert not waiting.done()
    limited.release(origin)
    assert await waiting
    assert not limited.try_acquire(origin), "the waiter holds the one slot"


async def _job_holders(app: FastAPI, held: list[HeldDelivery]) -> dict[int, str | None]:
    """Who holds the job of each of these deliveries that has one."""
    rows = await context_of(app).db.fetch(
        "SELECT (payload->>'deliveryId')::bigint AS delivery_id, locked_by FROM jobs"
        " WHERE (payload->>'deliveryId')::bigint = ANY($1)",
        [h.delivery_id for h in held],
    )
    return {row["delivery_id"]: row["locked_by"] for row in rows}


async def test_after_a_410_the_rest_of_the_endpoints_held_deliveries_are_not_sent(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await subscribe(client, publisher, receiver, ["gone-held"])
    receiver["gone-held"].replies.append(Reply(410))
    held = await _emit_held(app, publisher.id, count=3)
    await deliver_held(app, held)
    assert len(receiver["gone-held"].arrivals) == 1
    # The second may go (handed back to the queue); the third still waits for it.
    assert await _job_holders(app, held[1:]) == {held[1].delivery_id: None}
    assert await drain(app) == 2  # the queue settles them as the disabled endpoint's
    assert len(receiver["gone-held"].arrivals) == 1
    settled = await deliveries(app, publisher.id)
    assert [d.status for d in settled] == ["failed"] * 3


async def test_a_chain_whose_sender_died_after_the_first_goes_on_when_the_lease_ends(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["orphaned-chain"])
    first, second = await _emit_held(app, publisher.id, count=2)
    assert second.job_id is None, "the second waits for the first"
    await deliver_held(app, [first])  # the first goes; then the sender dies
    holders = await _job_holders(app, [second])
    assert list(holders.values()) == [context_of(app).webhooks.holder], "released, to the sender"
    assert await drain(app) == 0
    clock.advance(context_of(app).settings.webhook_timeout + 31)
    assert await drain(app) == 1
    assert [body["data"]["n"] for body in receiver["orphaned-chain"].verified()] == [0, 1]


async def test_held_deliveries_of_a_stopping_worker_go_back_to_the_queue(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await subscribe(client, publisher, receiver, ["stopping"])
    receiver["stopping"].replies.append(Reply(200, delay=5.0))
    held = await _emit_held(app, publisher.id, count=2)
    sending = asyncio.create_task(deliver_held(app, held))
    for _ in range(500):  # within 5 s, the first one is on the wire
        if receiver["stopping"].arrivals:
            break
        await asyncio.sleep(0.01)
    assert receiver["stopping"].arrivals
    sending.cancel()  # the worker's stop, past its grace
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert await _job_holders(app, held) == {held[0].delivery_id: None}, "the first, handed back"
    assert await drain(app) == 2, "any worker sends them at once, in order"
