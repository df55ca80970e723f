"""Prometheus metrics (SPEC §8): requests, syncs, the job queue, webhook deliveries, Apple calls.

Counters and histograms are per process, as usual with Prometheus: scrape every process. The
queue, sync and delivery gauges are read from the database (`app.api.routes.gauges`), so any process
reports them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
APPLE_CALLS = Counter(
    "storekit_apple_calls_total", "Calls to the App Store Server API", ["operation", "outcome"]
)
APPLE_LATENCY = Histogram(
    "storekit_apple_call_duration_seconds",
    "Time of one call to the App Store Server API",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
