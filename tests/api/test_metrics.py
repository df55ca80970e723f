"""SPEC §8's /metrics: METRICS_TOKEN, the database's gauges at most every 5 seconds whatever the
scrape rate, and a bounded set of series whatever the requests."""

from __future__ import annotations

import httpx


async def test_unknown_methods_are_one_label(client: httpx.AsyncClient) -> None:
    for method in ("FOO1", "BREW", "PROPFIND"):
        await client.request(method, "/healthz")
    text = (await client.get("/metrics")).text
    assert 'method="other"' in text
    for method in ("FOO1", "BREW", "PROPFIND"):
        assert f'method="{method}"' not in text
