"""docs/api.md §5, delivery: signed POSTs, retries on the injected clock, Retry-After, 410, replay."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.context import Context
from app.enums import Topic
from app.jobs.queue import enqueue
from app.metrics import WEBHOOK_ATTEMPTS
from app.subscriptions.events import Event
from app.webhooks import outbox, repository
from tests.helpers.api import PublisherRef, new_publisher
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.webhooks import (
    TOPIC,
    context_of,
    deliveries,
    drain,
    emit_event,
    job_run_at,
    subscribe,
)


async def attempts_of(context: Context, delivery_id: int) -> list[SimpleNamespace]:
    rows = await context.db.fetch(
        "SELECT * FROM webhook_delivery_attempts WHERE delivery_id = $1 ORDER BY id", delivery_id
    )
    return [SimpleNamespace(**dict(row)) for row in rows]


async def test_failures_then_success_arrive_with_one_webhook_id(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["flaky"])
    receiver["flaky"].replies.extend([Reply(500), Reply(503), Reply(404)])
    data = {"synchronizationId": "sync-1", "accessGranted": True}
    before = {o: WEBHOOK_ATTEMPTS.labels(o)._value.get() for o in ("2xx", "4xx", "5xx")}
    await emit_event(app, publisher.id, data=data)
    for wait in (0, 6, 331, 1981):  # the schedule (5, 300, 1800) plus its jitter
        clock.advance(wait)
        assert await drain(app) == 1
    (delivery,) = await deliveries(app, publisher.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 4, 200)
    arrivals = receiver["flaky"].arrivals
    assert [a.payload for a in arrivals] == [
        {"broadcasterId": publisher.id, "topic": TOPIC, "data": data}
    ] * 4
    assert {a.headers["webhook-id"] for a in arrivals} == {delivery.webhook_id}
    assert all(a.headers["content-type"] == "application/json" for a in arrivals)
    codes = [a.status_code for a in await attempts_of(context_of(app), delivery.id)]
    assert codes == [500, 503, 404, 200]
    assert await job_run_at(app, delivery.id) == []
    counted = {o: WEBHOOK_ATTEMPTS.labels(o)._value.get() - before[o] for o in before}
    assert counted == {"2xx": 1, "4xx": 1, "5xx": 2}, "/metrics counts every attempt by outcome"
    metrics = (await client.get("/metrics")).text
    assert 'storekit_webhook_deliveries{status="pending"}' in metrics


async def test_retry_schedule_on_the_injected_clock_until_failed(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["down"])
    receiver["down"].replies.extend([Reply(500)] * 4)
    await emit_event(app, publisher.id)
    await drain(app)
    for delay in (5, 300, 1800):
        (delivery,) = await deliveries(app, publisher.id)
        (run_at,) = await job_run_at(app, delivery.id)
        assert delivery.next_attempt_at == run_at
        wait = (run_at - clock.now()).total_seconds()
        assert delay * 0.9 <= wait <= delay * 1.1
        clock.advance(delay * 0.9 - 0.5)
        assert await drain(app) == 0, "not due yet"
        clock.advance(wait - (delay * 0.9 - 0.5))
        assert await drain(app) == 1
    (delivery,) = await deliveries(app, publisher.id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert delivery.last_error == "HTTP 500"
    assert len(receiver["down"].verified()) == 4
    assert await job_run_at(app, delivery.id) == []


async def test_replay_of_a_failed_delivery_arrives(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["replayed"])
    receiver["replayed"].replies.extend([Reply(502)] * 4)
    await emit_event(app, publisher.id)
    for wait in (0, 6, 331, 1981):
        clock.advance(wait)
        await drain(app)
    (failed,) = await deliveries(app, publisher.id)
    assert failed.status == "failed"
    url = f"/admin/publishers/{publisher.id}/webhook-deliveries/{failed.id}/replay"
    answer = await client.post(url, headers=publisher.headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending" and answer.json()["attempts"] == 4
    assert await drain(app) == 1
    (delivery,) = await deliveries(app, publisher.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 5)
    arrivals = receiver["replayed"].arrivals
    assert len(receiver["replayed"].verified()) == 5
    assert {a.headers["webhook-id"] for a in arrivals} == {failed.webhook_id}
    assert len(await attempts_of(context_of(app), delivery.id)) == 5


async def test_gone_disables_the_endpoint(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["gone"])
    receiver["gone"].replies.extend([Reply(500), Reply(410)])
    await emit_event(app, publisher.id)
    await drain(app)  # the first one fails and waits for its retry
    await emit_event(app, publisher.id)
    await drain(app)  # the second one hears 410
    first, second = await deliveries(app, publisher.id)
    assert (second.status, second.last_status_code) == ("failed", 410)
    assert first.status == "failed" and "410" in (first.last_error or "")
    clock.advance(3600)
    assert await drain(app) == 1  # the first one's retry job: nothing left to send
    await emit_event(app, publisher.id)
    assert len(await deliveries(app, publisher.id)) == 2, "no delivery to a disabled endpoint"
    assert len(receiver["gone"].verified()) == 2
    listed = await client.get("/3.1/webhook_subscriptions", headers=publisher.headers)
    assert listed.json()[TOPIC][0]["active"] is False


async def test_retry_after_seconds_on_429(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["throttled"])
    receiver["throttled"].replies.extend(
        [Reply(429, {"Retry-After": "120"}), Reply(429, {"Retry-After": "1"})]
    )
    await emit_event(app, publisher.id)
    await drain(app)
    (delivery,) = await deliveries(app, publisher.id)
    (run_at,) = await job_run_at(app, delivery.id)
    assert run_at - clock.now() >= timedelta(seconds=120)
    clock.advance(119)
    assert await drain(app) == 0
    clock.advance(2)
    assert await drain(app) == 1
    (run_at,) = await job_run_at(app, delivery.id)
    assert run_at - clock.now() >= timedelta(seconds=300 * 0.9), "the schedule's delay is longer"


async def test_retry_after_http_date_on_503(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["unavailable"])
    later = format_datetime(clock.now() + timedelta(seconds=601), usegmt=True)
    receiver["unavailable"].replies.append(Reply(503, {"Retry-After": later}))
    await emit_event(app, publisher.id)
    await drain(app)
    (delivery,) = await deliveries(app, publisher.id)
    (run_at,) = await job_run_at(app, delivery.id)
    assert run_at - clock.now() >= timedelta(seconds=600)
    clock.advance(601)
    assert await drain(app) == 1
    assert (await deliveries(app, publisher.id))[0].status == "succeeded"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_errors_are_recorded_and_retried(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/nobody-home"
    answer = await client.put(
        f"/3.1/webhook_subscriptions/{TOPIC}", json=[{"url": url}], headers=publisher.headers
    )
    assert answer.status_code == 200
    await emit_event(app, publisher.id)
    await drain(app)
    (delivery,) = await deliveries(app, publisher.id)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error == "connection refused"
    (attempt,) = await attempts_of(context_of(app), delivery.id)
    assert attempt.status_code is None and attempt.error == delivery.last_error


async def _store_endpoint(context: Context, publisher_id: int, url: str) -> None:
    """An endpoint as a service that checked nothing stored it (no lookup happens at subscribe
    time while private networks are allowed, and older versions did not check the name)."""
    bound_to = repository.secret_binding(publisher_id, TOPIC, url)
    sealed = context.secrets.seal(
        "a-webhook-secret-of-32-characters", purpose=repository.SECRET_PURPOSE, bound_to=bound_to
    )
    endpoint = repository.NewEndpoint(url, sealed)
    async with context.db.transaction() as tx:
        await repository.replace_endpoints(tx, publisher_id, TOPIC, [endpoint], context.clock.now())


@pytest.mark.parametrize(
    "url", ["http://" + "a" * 64 + ".com/h", "http://a..b.com/h", "http://xn--zz.com/h"]
)
async def test_a_stored_host_name_that_is_not_valid_fails_on_the_schedule(
    app: FastAPI, publisher: PublisherRef, clock: MovableClock, url: str
) -> None:
    await _store_endpoint(context_of(app), publisher.id, url)
    await emit_event(app, publisher.id)
    for wait in (0, 6, 331, 1981):  # the schedule (5, 300, 1800) plus its jitter
        clock.advance(wait)
        assert await drain(app) == 1
        (delivery,) = await deliveries(app, publisher.id)
        assert delivery.last_error == "not sent: the URL has a host name that is not valid"
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert delivery.last_status_code is None
    assert await job_run_at(app, delivery.id) == []
    attempts = await attempts_of(context_of(app), delivery.id)
    assert [a.error for a in attempts] == [delivery.last_error] * 4


async def test_a_job_run_twice_sends_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
) -> None:
    await subscribe(client, publisher, receiver, ["once"])
    await emit_event(app, publisher.id)
    await drain(app)
    (delivery,) = await deliveries(app, publisher.id)
    context = context_of(app)
    now = context.clock.now()
    await enqueue(context.db, "webhook_delivery", {"deliveryId": delivery.id}, run_at=now)
    stale = {"deliveryId": delivery.id, "generation": 7}
    await enqueue(context.db, "webhook_delivery", stale, run_at=now)
    assert await drain(app) == 2
    assert len(receiver["once"].verified()) == 1
    assert await job_run_at(app, delivery.id) == []


async def test_only_subscribed_endpoints_get_deliveries_and_removal_stops_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    clock: MovableClock,
) -> None:
    await subscribe(client, publisher, receiver, ["removed"])
    other = await new_publisher(client)
    await emit_event(app, other.id)  # another publisher's event
    await emit_event(app, publisher.id, "subscriptionCreated")  # a topic not subscribed to
    assert await deliveries(app, other.id) == [] and await deliveries(app, publisher.id) == []
    receiver["removed"].replies.append(Reply(500))
    await emit_event(app, publisher.id)
    await drain(app)
    url = f"/3.1/webhook_subscriptions/{TOPIC}"
    assert (await client.put(url, json=[], headers=publisher.headers)).status_code == 200
    clock.advance(60)
    assert await drain(app) == 1
    (delivery,) = await deliveries(app, publisher.id)
    assert delivery.status == "failed" and "removed" in (delivery.last_error or "")
    assert len(receiver["removed"].verified()) == 1


async def test_the_events_of_one_cause_reach_a_url_one_after_another_in_order(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    """docs/api.md §5: one URL subscribed to several topics gets a cause's events in the order they were
    written, each first attempt after the one before it ended, even through the queue."""
    secret = "a-shared-secret-for-every-topic"
    topics = [
        "inappPurchaseValidationSucceeded",
        "subscriptionTerminated",
        "subscriptionCreated",
        "inappPurchaseSyncResult",
    ]
    hmac = {"name": "HMAC", "options": {"hashAlg": "SHA256", "sharedSecret": secret}}
    for topic in topics:
        body = [{"url": receiver.url("ordered"), "verification": hmac}]
        url = f"/3.1/webhook_subscriptions/{topic}"
        assert (await client.put(url, json=body, headers=publisher.headers)).status_code == 200
    receiver["ordered"].secret = secret
    receiver["ordered"].replies.append(Reply(200, delay=0.3))  # the first is slow to answer
    context = context_of(app)
    events = [Event(Topic(t), {"n": n}) for n, t in enumerate(topics)]
    async with context.db.transaction() as tx:
        await outbox.write(tx, publisher.id, events, context.clock.now())
    while await drain(app):  # a worker of many slots; each release lets the next go
        pass
    arrivals = receiver["ordered"].arrivals
    assert [a.payload["topic"] for a in arrivals if a.payload] == topics
    assert arrivals[1].arrived >= arrivals[0].arrived + 0.3, "the second waited for the first"
