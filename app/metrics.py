"""Prometheus metrics (SPEC §8): requests, syncs, the job queue, Apple calls.

Counters and histograms are per process, as usual with Prometheus: scrape every process. The
queue and sync gauges are read from the database at scrape time, so any process reports them all.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

from app.jobs.foreground import FOREGROUND
from app.middleware import HttpMiddleware, ResponseWatch
from app.models import Job, Synchronization
from app.webhooks.models import WebhookDelivery

HTTP_REQUESTS = Counter(
    "storekit_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "storekit_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SYNC_RESULTS = Counter(
    "storekit_sync_results_total", "Synchronizations finalized by this process", ["result"]
)
SYNCS = Gauge("storekit_synchronizations", "Synchronizations in the database", ["status"])
JOBS_DUE = Gauge("storekit_jobs_due", "Jobs due to run now", ["kind"])
JOBS_OLDEST = Gauge("storekit_jobs_oldest_due_age_seconds", "Age of the oldest due job", ["kind"])
WEBHOOK_ATTEMPTS = Counter(
    "storekit_webhook_delivery_attempts_total", "Webhook delivery attempts", ["outcome"]
)
APPLE_CALLS = Counter(
    "storekit_apple_calls_total", "Calls to the App Store Server API", ["operation", "outcome"]
)
APPLE_LATENCY = Histogram(
    "storekit_apple_call_duration_seconds",
    "Time of one call to the App Store Server API",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics(HttpMiddleware):
    """Counts and times every request by method, route template and status."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, watch = time.perf_counter(), ResponseWatch(send)
        FOREGROUND.enter()
        try:
            await self.app(scope, receive, watch.send)
        finally:
            FOREGROUND.leave()
            method, route = scope["method"], _route(scope)
            HTTP_REQUESTS.labels(method, route, str(watch.status or 500)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


async def _refresh_gauges(session: AsyncSession, now: float) -> None:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(now, UTC)
    SYNCS.clear()
    rows = await session.execute(
        select(Synchronization.status, func.count())
        .where(Synchronization.status != "finalized")
        .group_by(Synchronization.status)
    )
    for status, count in rows:
        SYNCS.labels(status).set(count)
    JOBS_DUE.clear()
    JOBS_OLDEST.clear()
    jobs = await session.execute(
        select(Job.kind, func.count(), func.min(Job.run_at))
        .where(Job.run_at <= moment)
        .group_by(Job.kind)
    )
    for kind, count, oldest in jobs:
        JOBS_DUE.labels(kind).set(count)
        JOBS_OLDEST.labels(kind).set(max((moment - oldest).total_seconds(), 0.0))


DELIVERIES = Gauge("storekit_webhook_deliveries", "Webhook deliveries by status", ["status"])


async def _refresh_deliveries(session: AsyncSession) -> None:
    DELIVERIES.clear()
    rows = await session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    )
    for status, count in rows:
        DELIVERIES.labels(status).set(count)


async def render(session: AsyncSession, now: float) -> tuple[bytes, str]:
    await _refresh_deliveries(session)
    await _refresh_gauges(session, now)
    return generate_latest(), CONTENT_TYPE_LATEST
