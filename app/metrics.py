"""Prometheus metrics (docs/api.md §8): requests, syncs, the job queue, webhook deliveries, Apple calls,
reconciliation passes (by outcome only: a label per app would grow with the publishers).

Counters and histograms are per process, as usual with Prometheus: scrape every process. The
queue, sync and delivery gauges are read from the database (`app.api.routes.gauges`), so any process
reports them all; at most every 5 seconds (`AtMostEvery`), however often /metrics is scraped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram

from app.clock import Clock

GAUGES_EVERY = timedelta(seconds=5)

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
DELIVERIES = Gauge("storekit_webhook_deliveries", "Webhook deliveries by status", ["status"])
PUBLISHER_TOKEN_LOOKUPS = Counter(
    "storekit_publisher_token_lookups_total",
    "Publisher tokens checked, by where the answer came from (memory or database)",
    ["source"],
)
APPLE_NOTIFICATIONS_OUT_OF_DATE = Counter(
    "storekit_apple_notifications_out_of_date_total",
    "Verified notifications signed over 180 days before they arrived (old) or ahead of this"
    " service's clock (future): stored and applied as any, and worth a look",
    ["reason"],
)
APPLE_CALLS = Counter(
    "storekit_apple_calls_total", "Calls to the App Store Server API", ["operation", "outcome"]
)
APPLE_WAITS = Counter(
    "storekit_apple_budget_waits_total",
    "Syncs that waited for Apple's budget (spent, or a 429's pause) instead of calling",
)
APPLE_LATENCY = Histogram(
    "storekit_apple_call_duration_seconds",
    "Time of one call to the App Store Server API",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

RECONCILE_PASSES = Counter(
    "storekit_reconcile_passes_total", "Reconciliation passes run by this process", ["outcome"]
)
RECONCILE_DURATION = Histogram(
    "storekit_reconcile_pass_duration_seconds",
    "Time of one reconciliation pass",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
NOTIFICATIONS_RECOVERED = Counter(
    "storekit_notifications_recovered_total",
    "Notifications the service lacked, recovered from Apple's notification history",
)
NOTIFICATIONS_REFUSED = Counter(
    "storekit_recovered_notifications_refused_total",
    "Notifications from Apple's history that failed verification (not stored)",
)
SAFETY_NET_CHECKED = Counter(
    "storekit_safety_net_checked_total",
    "Lapsed subscriptions read again from Apple by the expiry safety net",
)
SAFETY_NET_CORRECTED = Counter(
    "storekit_safety_net_corrected_total",
    "Subscriptions the expiry safety net changed (each with its webhooks)",
)
SAFETY_NET_SKIPPED = Counter(
    "storekit_safety_net_skipped_total",
    "Lapsed subscriptions the expiry safety net left for later: Apple failed beyond the retries",
)
RECONCILE_UNREADABLE_KEYS = Counter(
    "storekit_reconcile_unreadable_keys_total",
    "Apps a reconciliation pass left out: no configured SECRET_KEY opens their sealed key",
)
RECONCILE_APPLE_ERRORS = Counter(
    "storekit_reconcile_apple_errors_total",
    "Errors from Apple during reconciliation passes (transient, rate_limited, refused)",
    ["kind"],
)


class AtMostEvery:
    """Runs a refresh at most once per `interval` of the service's clock, however often it is
    asked to; meanwhile the gauges keep what the last refresh set. Concurrent askers wait for the
    one refresh in flight instead of starting their own. A refresh that fails counts as one: the
    next is tried an interval later, not at every scrape."""

    def __init__(self, interval: timedelta, clock: Clock) -> None:
        self.interval, self.clock = interval, clock
        self._last: datetime | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def _due(self) -> bool:
        return self._last is None or self.clock.now() - self._last >= self.interval

    async def run(self, refresh: Callable[[], Awaitable[None]]) -> bool:
        """Refresh if due; True when this call refreshed."""
        if not self._due():
            return False
        async with self._lock:
            if not self._due():
                return False
            self._last = self.clock.now()
            self.refreshes += 1
            await refresh()
            return True
