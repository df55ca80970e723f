"""The `webhook_delivery` job: one attempt of one delivery, its outcome, its next try.

Three steps, and no transaction is open during the HTTP call:
1. read the delivery, its endpoint and event (a delivery that is done, or whose job belongs to an
   earlier round, completes its job and stops: the handler is idempotent);
2. POST it, unless its endpoint already has as many deliveries in flight as it may, in which
   case the job is handed back for a second later so that a slow or dead endpoint never holds
   the worker's slots that other endpoints' deliveries need;
3. in one transaction: record the attempt, settle the delivery, complete or reschedule the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import Context
from app.db import unit_of_work
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.metrics import WEBHOOK_ATTEMPTS
from app.models import WebhookEvent
from app.webhooks.fanout import DELIVERY_JOB, HeldDelivery, lease_for
from app.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from app.webhooks.schedule import jittered, next_delay
from app.webhooks.sending import Answer, Message, envelope, http_client, send

log = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_ORIGIN = 4
BUSY_RETRY_SECONDS = 1.0
# A held delivery waits this long for a slot of its origin, then goes to the queue (a slow
# endpoint must not hold the sync jobs of other publishers for long).
HELD_SLOT_WAIT = 0.25
HOLDER = f"{socket.gethostname()}:{os.getpid()}:held"
GONE = 410
ENDPOINT_REMOVED = "not sent: the endpoint was removed from the subscription"
ENDPOINT_DISABLED = "not sent: the endpoint is disabled (it answered 410 Gone)"


class OriginSlots:
    """How many deliveries each endpoint origin (host and port) has in flight in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Event]] = {}

    def try_acquire(self, origin: str) -> bool:
        held = self._in_flight.get(origin, 0)
        if held >= self.limit:
            return False
        self._in_flight[origin] = held + 1
        return True

    async def acquire(self, origin: str, wait: float) -> bool:
        """A slot for `origin`, waiting at most `wait` seconds for one to free."""
        deadline = time.monotonic() + wait
        while not self.try_acquire(origin):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            freed = asyncio.Event()
            waiters = self._waiters.setdefault(origin, [])
            waiters.append(freed)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), remaining)
            finally:
                if freed in waiters:
                    waiters.remove(freed)
        return True

    def release(self, origin: str) -> None:
        held = self._in_flight.get(origin, 1) - 1
        if held > 0:
            self._in_flight[origin] = held
        else:
            self._in_flight.pop(origin, None)
        for freed in self._waiters.pop(origin, []):
            freed.set()


slots = OriginSlots(MAX_IN_FLIGHT_PER_ORIGIN)


@dataclass(frozen=True)
class Attempt:
    """The job's view of one try: which delivery, which round of it, and what went out."""

    job: ClaimedJob
    delivery_id: int
    generation: int
    message: Message

    @property
    def origin(self) -> str:
        """Host and port: what the in-flight bound counts by."""
        return httpx.URL(self.message.url).netloc.decode("ascii")


# A 2xx, in one statement with no transaction around it: the attempt recorded, the round settled
# (unless a replay or another outcome settled it meanwhile), the job done.
# $1 delivery, $2 generation, $3 job, $4 status code, $5 duration, $6 started at, $7 now.
SUCCEEDED = """
WITH delivery AS (
    UPDATE webhook_deliveries SET
        attempts = attempts + 1,
        last_status_code = $4,
        last_error = NULL,
        schedule_step = schedule_step + CASE WHEN this_round THEN 1 ELSE 0 END,
        next_attempt_at = CASE WHEN this_round THEN NULL ELSE next_attempt_at END,
        updated_at = CASE WHEN this_round THEN $7::timestamptz ELSE $6::timestamptz END,
        status = CASE WHEN this_round THEN 'succeeded' ELSE status END
    FROM (
        SELECT status = 'pending' AND generation = $2 AS this_round
        FROM webhook_deliveries WHERE id = $1 FOR UPDATE
    ) AS current
    WHERE id = $1
    RETURNING id
), attempt AS (
    INSERT INTO webhook_delivery_attempts
        (delivery_id, attempted_at, status_code, error, duration_ms)
    SELECT id, $6, $4, NULL, $5 FROM delivery
)
DELETE FROM jobs WHERE id = $3
"""


def _job_target(job: ClaimedJob) -> tuple[int, int]:
    return int(job.payload["deliveryId"]), int(job.payload.get("generation", 0))


def _settle(delivery: WebhookDelivery, status: str, now: datetime, error: str | None) -> None:
    delivery.status, delivery.next_attempt_at, delivery.updated_at = status, None, now
    if error is not None:
        delivery.last_error = error


async def _endpoint(session: AsyncSession, delivery: WebhookDelivery) -> WebhookEndpoint | str:
    """The delivery's endpoint, or why there is none to send to."""
    if delivery.endpoint_id is None:
        return ENDPOINT_REMOVED
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None:
        return ENDPOINT_REMOVED
    return endpoint if endpoint.active else ENDPOINT_DISABLED


async def _message(
    context: Context, session: AsyncSession, delivery: WebhookDelivery, endpoint: WebhookEndpoint
) -> Message:
    event = await session.get_one(WebhookEvent, delivery.event_id)
    body = envelope(delivery.publisher_id, delivery.topic, event.payload)
    secret = context.secrets.decrypt(endpoint.secret_encrypted)
    return Message(delivery.url, delivery.webhook_id, body, secret)


async def _prepare(context: Context, job: ClaimedJob) -> Attempt | None:
    """Step 1: what to send, or None when there is nothing to do (the job is then completed)."""
    delivery_id, generation = _job_target(job)
    async with unit_of_work(context.sessions) as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending" or delivery.generation != generation:
            await queue.complete(session, job.id)
            return None
        endpoint = await _endpoint(session, delivery)
        if isinstance(endpoint, str):
            _settle(delivery, "failed", context.clock.now(), endpoint)
            await queue.complete(session, job.id)
            return None
        message = await _message(context, session, delivery, endpoint)
    return Attempt(job, delivery_id, generation, message)


async def _postpone(context: Context, job: ClaimedJob) -> None:
    run_at = context.clock.now() + timedelta(seconds=jittered(BUSY_RETRY_SECONDS))
    async with unit_of_work(context.sessions) as session:
        await queue.reschedule(session, job.id, run_at, "endpoint busy: postponed")


async def _disable_endpoint(
    session: AsyncSession, delivery: WebhookDelivery, now: datetime
) -> None:
    """410 Gone: no more deliveries to this endpoint; its other pending ones fail now."""
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == delivery.endpoint_id)
        .values(active=False, disabled_at=now, updated_at=now)
    )
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == delivery.endpoint_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.id != delivery.id,
        )
        .values(
            status="failed",
            next_attempt_at=None,
            last_error=ENDPOINT_DISABLED,
            updated_at=now,
        )
    )


async def _settle_round(
    context: Context,
    session: AsyncSession,
    job: ClaimedJob,
    delivery: WebhookDelivery,
    answer: Answer,
) -> None:
    """A failed attempt (a 2xx concludes in `SUCCEEDED`): gone, exhausted or to be tried again;
    the delivery and its job, together."""
    now = context.clock.now()
    delivery.schedule_step += 1
    if answer.status_code == GONE:
        await _disable_endpoint(session, delivery, now)
        _settle(delivery, "failed", now, None)
    else:
        schedule = context.settings.webhook_retry_schedule
        delay = next_delay(schedule, delivery.schedule_step, answer.retry_after)
        if delay is not None:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            await queue.reschedule(session, job.id, delivery.next_attempt_at, answer.error)
            return
        _settle(delivery, "failed", now, None)  # the schedule is exhausted
    await queue.complete(session, job.id)


def _record_attempt(
    session: AsyncSession, delivery: WebhookDelivery, started_at: datetime, answer: Answer
) -> None:
    session.add(
        WebhookDeliveryAttempt(
            delivery_id=delivery.id,
            attempted_at=started_at,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = answer.status_code, answer.error
    delivery.updated_at = started_at


def _outcome(answer: Answer) -> str:
    """The attempt's outcome for /metrics: 2xx, 4xx, 5xx, or the error's kind."""
    if answer.status_code is None:
        return "error"
    return f"{answer.status_code // 100}xx"


async def _succeeded(
    context: Context, attempt: Attempt, started_at: datetime, answer: Answer
) -> None:
    await context.pg.execute(
        SUCCEEDED,
        attempt.delivery_id,
        attempt.generation,
        attempt.job.id,
        answer.status_code,
        answer.duration_ms,
        started_at,
        context.clock.now(),
    )


async def _failed(
    context: Context,
    session: AsyncSession,
    attempt: Attempt,
    started_at: datetime,
    answer: Answer,
) -> None:
    delivery = await session.get(WebhookDelivery, attempt.delivery_id, with_for_update=True)
    if delivery is None:
        await queue.complete(session, attempt.job.id)
        return
    _record_attempt(session, delivery, started_at, answer)
    if delivery.status == "pending" and delivery.generation == attempt.generation:
        await _settle_round(context, session, attempt.job, delivery, answer)
    else:  # replayed or settled meanwhile: this job's round is over
        await queue.complete(session, attempt.job.id)


async def _conclude(
    context: Context, attempt: Attempt, started_at: datetime, answer: Answer
) -> None:
    """Step 3: one transaction for the attempt, the delivery's state and the job."""
    if answer.succeeded:
        await _succeeded(context, attempt, started_at, answer)
    else:
        async with unit_of_work(context.sessions) as session:
            await _failed(context, session, attempt, started_at, answer)
    WEBHOOK_ATTEMPTS.labels(_outcome(answer)).inc()
    log.info(
        "webhook delivery %s: %s",
        attempt.delivery_id,
        answer.error or f"HTTP {answer.status_code}",
        extra={
            "fields": {"deliveryId": attempt.delivery_id, "webhookId": attempt.message.webhook_id}
        },
    )


async def deliver_job(context: Context, job: ClaimedJob) -> None:
    """Run one `webhook_delivery` job (payload: `deliveryId`, and `generation` after a replay)."""
    attempt = await _prepare(context, job)
    if attempt is None:
        return
    if not slots.try_acquire(attempt.origin):
        await _postpone(context, job)
        return
    await _send_in_slot(context, attempt)


async def _send_in_slot(context: Context, attempt: Attempt) -> Answer:
    """Send `attempt`, whose origin slot the caller holds, release the slot, and conclude."""
    try:
        started_at = context.clock.now()
        answer = await send(http_client(context), attempt.message, context.settings, started_at)
    finally:
        slots.release(attempt.origin)
    await _conclude(context, attempt, started_at, answer)
    return answer


def _held_attempt(context: Context, held: HeldDelivery) -> Attempt:
    job = ClaimedJob(held.job_id, DELIVERY_JOB, {"deliveryId": held.delivery_id}, 1)
    body = envelope(held.publisher_id, held.topic, held.data)
    secret = context.secrets.decrypt(held.secret_encrypted)
    return Attempt(job, held.delivery_id, 0, Message(held.url, held.webhook_id, body, secret))


# Before each held delivery after an endpoint's first: its lease, renewed for the whole attempt
# (the first ones' leases, from the finalize, already cover theirs); NULL when it ran out and a
# worker may hold the job now, which then is the worker's to send.
RENEW_HELD = """
UPDATE jobs SET locked_until = $3 WHERE id = $1 AND locked_by = $2 RETURNING id
"""


async def _hand_back(context: Context, held: list[HeldDelivery]) -> None:
    """Held deliveries that will not go now go to the queue, for any worker, at once."""
    if held:
        await queue.release(context.pg, HOLDER, [h.job_id for h in held])
        context.wake_workers()


async def _renew(context: Context, held: HeldDelivery) -> bool:
    until = lease_for(context.clock.now(), context.settings.webhook_timeout)
    return await context.pg.fetchval(RENEW_HELD, held.job_id, HOLDER, until) is not None


async def _send_held(context: Context, held: HeldDelivery) -> Answer | None:
    """One held delivery, concluded; None when its origin stayed busy (then it is handed back)."""
    attempt = _held_attempt(context, held)
    if not await slots.acquire(attempt.origin, HELD_SLOT_WAIT):
        await _hand_back(context, [held])
        return None
    return await _send_in_slot(context, attempt)


async def _send_in_order(context: Context, deliveries: list[HeldDelivery]) -> None:
    """One endpoint's held deliveries, in order. What is not sent goes back to the queue: after a
    410 (the queue's `_prepare` then settles them as the endpoint's), when the origin stays busy,
    and when the worker is stopping (cancelled)."""
    for position, held in enumerate(deliveries):
        try:
            if position and not await _renew(context, held):
                continue  # its lease ran out: a worker has it
            answer = await _send_held(context, held)
        except asyncio.CancelledError:
            await asyncio.shield(_hand_back(context, deliveries[position:]))
            raise
        except Exception:  # its job stays leased; a worker sends it when the lease runs out
            log.exception("held webhook delivery %s failed", held.delivery_id)
            continue
        if answer is None or answer.status_code == GONE:
            await _hand_back(context, deliveries[position + 1 :])
            return


async def deliver_held(context: Context, held: list[HeldDelivery]) -> None:
    """Send deliveries whose jobs were written leased to this process (`hold_deliveries`), just
    after their transaction committed: in order per endpoint, endpoints side by side."""
    by_endpoint = itertools.groupby(
        sorted(held, key=lambda h: h.endpoint_id), lambda h: h.endpoint_id
    )
    await asyncio.gather(*(_send_in_order(context, list(group)) for _, group in by_endpoint))
