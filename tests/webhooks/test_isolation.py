"""Delivery under adversity: slow endpoints, DNS that changes, and rolled-back events."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.enums import Topic
from app.subscriptions.events import Event
from app.webhooks import outbox, targets
from app.webhooks.delivery import MAX_IN_FLIGHT_PER_ORIGIN
from tests.helpers.api import PublisherRef, new_publisher, running
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.webhooks import (
    TOPIC,
    context_of,
    deliveries,
    drain,
    emit_event,
    job_run_at,
    subscribe,
    webhook_settings,
)

SLOW = [f"slow-{n}" for n in range(MAX_IN_FLIGHT_PER_ORIGIN + 2)]


async def test_a_slow_endpoint_never_holds_up_the_others(
    webhooks_database_url: str, data_dir: Path, clock: MovableClock, receiver: Receiver
) -> None:
    settings = webhook_settings(webhooks_database_url, data_dir, webhook_timeout=0.5)
    with Receiver() as fast:
        async with running(settings, clock) as (app, client):
            publisher = await new_publisher(client)
            await subscribe(client, publisher, receiver, SLOW, also=[(fast, "fast")])
            for name in SLOW:
                receiver[name].replies.append(Reply(delay=3.0))
            await emit_event(app, publisher.id)
            started = time.monotonic()
            assert await drain(app) == len(SLOW) + 1
            assert time.monotonic() - started < 3.0, "the timeout cut the slow ones short"
            await _check_first_round(app, publisher, fast, clock)


async def _check_first_round(
    app: FastAPI, publisher: PublisherRef, fast: Receiver, clock: MovableClock
) -> None:
    rows = {d.url.rsplit("/", 1)[1]: d for d in await deliveries(app, publisher.id)}
    assert rows["fast"].status == "succeeded"
    assert len(fast["fast"].verified()) == 1
    slow = [rows[name] for name in SLOW]
    timed_out = [d for d in slow if d.attempts == 1]
    postponed = [d for d in slow if d.attempts == 0]
    assert len(timed_out) == MAX_IN_FLIGHT_PER_ORIGIN and len(postponed) == 2
    assert {d.last_error for d in timed_out} == {"timed out after 0.5 s"}
    for delivery in postponed:  # handed back at once, not waiting for a free slot
        (run_at,) = await job_run_at(app, delivery.id)
        assert 0.8 <= (run_at - clock.now()).total_seconds() <= 1.2


class FakeDns:
    def __init__(self) -> None:
        self.answers: dict[str, str] = {}

    async def resolve(self, host: str, port: int) -> list[targets.IPAddress]:
        return [ipaddress.ip_address(self.answers[host])]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(targets.Lookups, "resolve", lambda _, host, port: fake.resolve(host, port))
    return fake


async def test_dns_rebinding_is_refused_at_delivery(
    webhooks_database_url: str,
    data_dir: Path,
    clock: MovableClock,
    receiver: Receiver,
    dns: FakeDns,
) -> None:
    strict = webhook_settings(webhooks_database_url, data_dir, webhook_allow_private_networks=False)
    host = "rebinding.example.test"
    dns.answers[host] = "93.184.216.34"
    async with running(strict, clock) as (app, client):
        publisher = await new_publisher(client)
        await subscribe(client, publisher, receiver, ["rebound"], host=host)
        dns.answers[host] = "127.0.0.1"
        await emit_event(app, publisher.id)
        assert await drain(app) == 1
        (delivery,) = await deliveries(app, publisher.id)
    assert receiver["rebound"].arrivals == []
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "private" in (delivery.last_error or "")


async def test_delivery_connects_to_the_address_it_checked(
    webhooks_database_url: str,
    data_dir: Path,
    clock: MovableClock,
    receiver: Receiver,
    dns: FakeDns,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pinned.example.test` exists only in the fake DNS: the request can reach the receiver
    only through the address that was checked, with the original Host header."""
    strict = webhook_settings(webhooks_database_url, data_dir, webhook_allow_private_networks=False)
    host = "pinned.example.test"
    dns.answers[host] = "127.0.0.1"
    monkeypatch.setattr(targets, "is_public", lambda address: True)  # loopback stands in
    async with running(strict, clock) as (app, client):
        publisher = await new_publisher(client)
        await subscribe(client, publisher, receiver, ["pinned"], host=host)
        await emit_event(app, publisher.id)
        await drain(app)
    (arrival,) = receiver["pinned"].arrivals
    assert arrival.headers["host"] == f"{host}:{receiver.port}"
    assert len(receiver["pinned"].verified()) == 1


async def _emit_then_fail(app: FastAPI, publisher_id: int) -> None:
    context = context_of(app)
    mine = "SELECT count(*) FROM webhook_deliveries WHERE publisher_id = $1"
    async with context.db.transaction() as tx:
        await outbox.write(tx, publisher_id, [Event(Topic(TOPIC), {})], context.clock.now())
        assert await tx.fetchval(mine, publisher_id) == 1
        raise RuntimeError("the sync's transaction fails")


async def test_an_event_rolled_back_leaves_no_delivery(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await subscribe(client, publisher, receiver, ["never"])
    with pytest.raises(RuntimeError):
        await _emit_then_fail(app, publisher.id)
    assert await deliveries(app, publisher.id) == []
    assert await drain(app) == 0
