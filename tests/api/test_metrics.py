"""docs/api.md §8's /metrics: METRICS_TOKEN, the database's gauges at most every 5 seconds whatever the
scrape rate, and a bounded set of series whatever the requests."""

from __future__ import annotations

import asyncio
import secrets

import httpx

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from tests.helpers.api import assert_envelope, make_settings, running

METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(24)


async def test_metrics_need_the_metrics_token_when_it_is_set(
    settings: Settings, clock: MovableClock
) -> None:
    guarded = settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    async with running(guarded, clock) as (_, client):
        assert_envelope(await client.get("/metrics"), 401, "AUTH0001")
        assert_envelope(
            await client.get("/metrics", headers={"Authorization": ""}), 401, "AUTH0001"
        )
        for wrong in (
            "Bearer " + METRICS_TOKEN[:-1],
            "Bearer " + METRICS_TOKEN + "x",
            "Basic " + METRICS_TOKEN,
            METRICS_TOKEN,
        ):
            answer = await client.get("/metrics", headers={"Authorization": wrong})
            assert_envelope(answer, 401, "AUTH0002")
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200
        assert "storekit_http_requests_total" in right.text
        assert (await client.get("/healthz")).status_code == 200, "only /metrics is guarded"


async def test_metrics_are_open_without_a_metrics_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


def test_an_empty_metrics_token_is_unset(settings: Settings) -> None:
    empty = make_settings(str(settings.database_url), settings.data_dir, metrics_token="")
    assert empty.metrics_token is None


async def test_the_database_gauges_are_read_at_most_every_five_seconds(
    client: httpx.AsyncClient, context: Context, clock: MovableClock
) -> None:
    await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
    for _ in range(20):
        assert (await client.get("/metrics")).status_code == 200
    assert context.gauges.refreshes == 1
    clock.advance(4.9)
    await client.get("/metrics")
    assert context.gauges.refreshes == 1
    clock.advance(0.1)
    answer = await client.get("/metrics")
    assert context.gauges.refreshes == 2
    assert 'storekit_webhook_deliveries{status="pending"}' in answer.text
    assert 'storekit_webhook_deliveries{status="failed"}' in answer.text


async def test_unknown_methods_are_one_label(client: httpx.AsyncClient) -> None:
    for method in ("FOO1", "BREW", "PROPFIND"):
        await client.request(method, "/healthz")
    text = (await client.get("/metrics")).text
    assert 'method="other"' in text
    for method in ("FOO1", "BREW", "PROPFIND"):
        assert f'method="{method}"' not in text
