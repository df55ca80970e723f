"""Sending webhook deliveries: one attempt of one delivery, its outcome, its next try.

Two ways in. A `webhook_delivery` job (the queue's: retries, replays, deliveries whose holder
died) runs `run_job`; a job handler that wrote held deliveries sends them with `deliver_held` just
after its commit, one URL's one after another. Either way no transaction is open during the HTTP
call, and one statement then records the attempt, settles the round, completes or reschedules the
job, and after a delivery's first attempt lets the next of its chain go (`repository.conclude`). An endpoint origin (host and port) has at most a few deliveries in flight
in a process, so that a slow or dead endpoint never holds the slots that others need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from app.activity.tally import Tally
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.enums import ActivityMetric, DeliveryStatus
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.jobs.worker import holder_id
from app.metrics import WEBHOOK_ATTEMPTS
from app.security import SecretBox
from app.webhooks import repository
from app.webhooks.outbox import HeldDelivery, lease_for
from app.webhooks.repository import Outcome, ToSend
from app.webhooks.schedule import jittered, next_delay
from app.webhooks.sending import Answer, Message, envelope, new_http_client, send
from app.webhooks.targets import Lookups, TargetGuard

log = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_ORIGIN = 4
BUSY_RETRY_SECONDS = 1.0
# A held delivery waits this long for a slot of its origin, then goes to the queue (a slow
# endpoint must not hold the sync jobs of other publishers for long).
HELD_SLOT_WAIT = 0.25
GONE = 410
ENDPOINT_REMOVED = "not sent: the endpoint was removed from the subscription"
ENDPOINT_DISABLED = "not sent: the endpoint is disabled (it answered 410 Gone)"
UNSENT = {True: ENDPOINT_REMOVED, False: ENDPOINT_DISABLED}  # by "the endpoint is gone"


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


@dataclass(frozen=True)
class Attempt:
    """One try: which delivery, which round of it, its job, and what goes out."""

    job_id: int
    delivery_id: int
    generation: int
    schedule_step: int
    message: Message
    publisher_id: int
    held: bool = False  # written held for this process, which goes on with its chain

    @property
    def origin(self) -> str:
        """Host and port: what the in-flight bound counts by (the URL itself when it does not
        parse: its attempt fails without a connection)."""
        try:
            return httpx.URL(self.message.url).netloc.decode("ascii")
        except (httpx.InvalidURL, UnicodeError):
            return self.message.url


def _job_target(job: ClaimedJob) -> tuple[int, int]:
    return int(job.payload["deliveryId"]), int(job.payload.get("generation", 0))


def _outcome_label(answer: Answer) -> str:
    """The attempt's outcome for /metrics: 2xx, 4xx, 5xx, or the error's kind."""
    if answer.status_code is None:
        return "error"
    return f"{answer.status_code // 100}xx"


class WebhookSender:
    """Sends this process's webhook deliveries: one pooled HTTP client, the threads that look
    the targets' names up (which the API's subscriptions check with, through `guard`), the
    origins' slots, the holder name of the deliveries it holds."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretBox,
        db: Database,
        clock: Clock,
        wake_workers: Callable[[], None],
        activity: Tally,
    ) -> None:
        self.settings, self.secrets, self.db, self.clock = settings, secrets, db, clock
        self.activity = activity
        self.wake_workers = wake_workers
        self.lookups = Lookups()  # DNS of webhook targets, never on the threads Apple's work needs
        self.guard = TargetGuard(settings.webhook_allow_private_networks, self.lookups.resolve)
        self.http = new_http_client(settings, resolver=self.lookups.resolve)
        self.slots = OriginSlots(MAX_IN_FLIGHT_PER_ORIGIN)
        self.holder = holder_id("held")

    async def close(self) -> None:
        await self.http.aclose()
        self.lookups.close()

    def hold(self, now: datetime) -> tuple[str, datetime]:
        """The lease under which a job handler writes the deliveries it will send itself."""
        return self.holder, lease_for(now, self.settings.webhook_timeout)

    # The queue's way -------------------------------------------------------------------------

    async def run_job(self, job: ClaimedJob) -> None:
        """Run one `webhook_delivery` job (payload: `deliveryId`, and `generation` after a replay)."""
        attempt = await self._prepare(job)
        if attempt is None:
            return
        if not self.slots.try_acquire(attempt.origin):
            run_at = self.clock.now() + timedelta(seconds=jittered(BUSY_RETRY_SECONDS))
            await queue.reschedule(self.db, job.id, run_at, "endpoint busy: postponed")
            return
        _, released = await self._send_in_slot(attempt)
        if released is not None:
            self.wake_workers()  # the next delivery of its chain may go

    async def _prepare(self, job: ClaimedJob) -> Attempt | None:
        """What to send, or None when there is nothing to do (the job is then completed, and the
        next delivery of its chain may go)."""
        delivery_id, generation = _job_target(job)
        found = await repository.to_send(self.db, delivery_id)
        stale = found is None or found.status != DeliveryStatus.PENDING
        if stale or found is None or found.generation != generation:
            await self._pass_on(delivery_id, job.id, None)
            return None
        if not found.endpoint or found.secret_encrypted is None:
            await self._pass_on(delivery_id, job.id, UNSENT[found.endpoint is None])
            return None
        message = self._message(found)
        return Attempt(
            job.id, delivery_id, generation, found.schedule_step, message, found.publisher_id
        )

    async def _pass_on(self, delivery_id: int, job_id: int, why: str | None) -> None:
        if await repository.pass_on(self.db, delivery_id, job_id, why, self.clock.now()):
            self.wake_workers()

    def _message(self, found: ToSend) -> Message:
        assert found.secret_encrypted is not None
        body = envelope(found.publisher_id, found.topic, found.data)
        secret = self._secret(found.secret_encrypted, found.publisher_id, found.topic, found.url)
        return Message(found.url, found.webhook_id, body, secret)

    def _secret(self, sealed: bytes, publisher_id: int, topic: str, url: str) -> str:
        """The endpoint's secret (a delivery keeps its endpoint's topic and URL)."""
        bound_to = repository.secret_binding(publisher_id, topic, url)
        return self.secrets.open(sealed, purpose=repository.SECRET_PURPOSE, bound_to=bound_to)

    # Sending and concluding ------------------------------------------------------------------

    async def _send_in_slot(self, attempt: Attempt) -> tuple[Answer, int | None]:
        """Send `attempt`, whose origin slot the caller holds, release the slot, and conclude;
        return the answer and the job of the next delivery of its chain, if one was released."""
        try:
            started_at = self.clock.now()
            answer = await send(self.http, attempt.message, self.settings, started_at)
        finally:
            self.slots.release(attempt.origin)
        return answer, await self._conclude(attempt, started_at, answer)

    def _settled(self, attempt: Attempt, answer: Answer) -> tuple[DeliveryStatus, datetime | None]:
        """Where the attempt leaves the round: succeeded, failed, or pending until a next try."""
        if answer.succeeded:
            return DeliveryStatus.SUCCEEDED, None
        if answer.status_code == GONE:
            return DeliveryStatus.FAILED, None
        schedule = self.settings.webhook_retry_schedule
        delay = next_delay(schedule, attempt.schedule_step + 1, answer.retry_after)
        if delay is None:  # the schedule is exhausted
            return DeliveryStatus.FAILED, None
        return DeliveryStatus.PENDING, self.clock.now() + timedelta(seconds=delay)

    async def _conclude(self, attempt: Attempt, started_at: datetime, answer: Answer) -> int | None:
        status, next_at = self._settled(attempt, answer)
        outcome = Outcome(
            delivery_id=attempt.delivery_id,
            generation=attempt.generation,
            job_id=attempt.job_id,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=answer.duration_ms,
            started_at=started_at,
            status=status,
            next_attempt_at=next_at,
        )
        now = self.clock.now()
        hold = self.hold(now) if attempt.held else None
        if answer.status_code == GONE:
            async with self.db.transaction() as tx:
                released = await repository.conclude(tx, outcome, now, hold)
                await repository.disable_endpoint_of(
                    tx, attempt.delivery_id, ENDPOINT_DISABLED, now
                )
        else:
            released = await repository.conclude(self.db, outcome, now, hold)
        label = _outcome_label(answer)
        WEBHOOK_ATTEMPTS.labels(label).inc()
        self.activity.count(attempt.publisher_id, ActivityMetric.WEBHOOK, label, answer.duration_ms)
        fields = {"deliveryId": attempt.delivery_id, "webhookId": attempt.message.webhook_id}
        text = answer.error or f"HTTP {answer.status_code}"
        log.info("webhook delivery %s: %s", attempt.delivery_id, text, extra={"fields": fields})
        return released

    # Held deliveries ---------------------------------------------------------------------------

    def _held_attempt(self, held: HeldDelivery, job_id: int) -> Attempt:
        body = envelope(held.publisher_id, held.topic, held.data)
        secret = self._secret(held.secret_encrypted, held.publisher_id, held.topic, held.url)
        message = Message(held.url, held.webhook_id, body, secret)
        return Attempt(job_id, held.delivery_id, 0, 0, message, held.publisher_id, held=True)

    async def _hand_back(self, job_ids: list[int]) -> None:
        """Held jobs that will not go now go to the queue, for any worker, at once."""
        if job_ids:
            await queue.release(self.db, self.holder, job_ids)
            self.wake_workers()

    async def _send_held(self, held: HeldDelivery, job_id: int) -> tuple[Answer, int | None] | None:
        """One held delivery, concluded; None when its origin stayed busy (then handed back)."""
        attempt = self._held_attempt(held, job_id)
        if not await self.slots.acquire(attempt.origin, HELD_SLOT_WAIT):
            await self._hand_back([job_id])
            return None
        return await self._send_in_slot(attempt)

    async def _send_chain(self, chain: list[HeldDelivery]) -> None:
        """One URL's held deliveries, one after another, each once the one before it had its
        first attempt (its conclusion hands this process the next one's job). What is not sent
        goes to the queue, chain and all: when the origin stays busy, after a 410, and when the
        process is stopping (cancelled); an error leaves the job leased, for a worker when the
        lease runs out."""
        job_id = chain[0].job_id
        for held in chain:
            if job_id is None:
                return  # not this process's to send
            try:
                sent = await self._send_held(held, job_id)
            except asyncio.CancelledError:
                await asyncio.shield(self._hand_back([job_id]))
                raise
            except Exception:
                log.exception("held webhook delivery %s failed", held.delivery_id)
                return
            if sent is None:
                return
            answer, job_id = sent
            if answer.status_code == GONE and job_id is not None:
                await self._hand_back([job_id])
                return

    async def deliver_held(self, held: list[HeldDelivery]) -> None:
        """Send the deliveries written held for this process, just after their transaction
        committed: in order per URL (docs/api.md §5), URLs side by side."""
        chains: dict[str, list[HeldDelivery]] = {}
        for delivery in sorted(held, key=lambda h: h.delivery_id):
            chains.setdefault(delivery.url, []).append(delivery)
        await asyncio.gather(*(self._send_chain(chain) for chain in chains.values()))
