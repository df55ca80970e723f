"""Apple's rate limits, kept by every process together: a burst bigger than Apple's budget is
shaped to it (each sync waits, `processing`, and none ends APPLE_UNAVAILABLE), and a 429 pauses
the app on every process until its Retry-After. Real `serve` processes against the simulator,
whose limits are made small for the test (one app: a few calls per few seconds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready
from tests.helpers.shop import Shop

WINDOW_S = 3
APPLE_BUDGET = 10  # calls per window, per endpoint, as the simulator enforces for the app
BURST = 30


Serve = Callable[[int], Awaitable[str]]


@pytest.fixture
async def serve(
    database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> AsyncIterator[Serve]:
    started: list[ServiceProcess] = []

    async def start(budget: int) -> str:
        port = free_port()
        env = clean_env(
            DATABASE_URL=database_url,
            DATA_DIR=str(data_dir),
            ADMIN_TOKEN=ADMIN_TOKEN,
            APPLE_ROOT_CERTIFICATES=str(root_path),
            APPLE_API_BASE_URL=simulator.base_url,
            APPLE_ONLINE_CHECKS="false",
            APPLE_BUDGET=str(budget),
            APPLE_BUDGET_WINDOW=str(WINDOW_S),
            LOG_FORMAT="json",
            LOG_LEVEL="WARNING",
        )
        args = ["serve", "--port", str(port), "--workers", "2"]
        started.append(ServiceProcess(args, env, tmp_path / f"serve-{len(started)}.log"))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(is_ready, url):
            assert time.monotonic() < deadline, "the service did not start"
            await asyncio.sleep(0.1)
        return url

    yield start
    for service in started:
        await asyncio.to_thread(service.stop)


async def _limit_apple(shop: Shop) -> None:
    body = {"budget": APPLE_BUDGET, "windowSeconds": WINDOW_S}
    answer = await shop.sim.put(f"/sim/apps/{shop.bundle_id}/rate-limit", json=body)
    assert answer.status_code == 200, answer.text
    await shop.sim.delete("/sim/calls")


async def _burst(shop: Shop, api: httpx.AsyncClient) -> list[str]:
    bought = [await shop.purchase() for _ in range(BURST)]
    ids = []
    for n, purchase in enumerate(bought):
        body = {
            "cleengCustomerId": shop.customers[n % 3],
            "transactionId": purchase["transactionId"],
        }
        answer = await api.post("/storekit2/purchases", json=body)
        assert answer.status_code == 202, answer.text
        ids.append(str(answer.json()["synchronizationId"]))
    return ids


async def _settled(api: httpx.AsyncClient, ids: list[str], seconds: float) -> set[str]:
    """Wait until every sync is finalized; on the way, every unfinished one is `processing`."""
    deadline, statuses = time.monotonic() + seconds, set()
    while True:
        polls = [(await api.get(f"/purchases/synchronizations/{i}")).json() for i in ids]
        waiting = {p["status"] for p in polls if p["status"] != "finalized"}
        statuses |= waiting
        if not waiting:
            return {p["result"] for p in polls} | {f"seen {s}" for s in statuses}
        assert time.monotonic() < deadline, f"not finalized: {waiting}"
        await asyncio.sleep(0.3)


SYNC_ROUTES = ("/inApps/v1/subscriptions/{", "/inApps/v1/transactions/{")


async def _calls(shop: Shop, status: int) -> int:
    """The syncs' calls Apple answered with `status` (not the history a reconciliation reads)."""
    counted = (await shop.sim.get("/sim/calls")).json()["calls"]
    syncs = [c for c in counted if str(c["route"]).startswith(SYNC_ROUTES)]
    return sum(c["count"] for c in syncs if c["status"] == status)


async def test_a_burst_bigger_than_apples_budget_is_shaped_to_it(shop: Shop, serve: Serve) -> None:
    await _limit_apple(shop)
    url = await serve(APPLE_BUDGET - 1)  # the service keeps below Apple's figure
    async with httpx.AsyncClient(base_url=url, headers=shop.publisher.headers) as api:
        ids = await _burst(shop, api)
        seen = await _settled(api, ids, BURST / (APPLE_BUDGET - 1) * WINDOW_S + 30)
    assert seen <= {"SUBSCRIPTION_CREATED", "seen processing"}, seen
    assert await _calls(shop, 429) <= 1, "shaped below Apple's limit: at most one 429"
    assert await _calls(shop, 200) == BURST, "one call per subscription sync"


async def test_a_429_pauses_the_app_on_every_process_until_its_retry_after(
    shop: Shop, serve: Serve
) -> None:
    await _limit_apple(shop)
    url = await serve(APPLE_BUDGET * 10)  # a budget above Apple's: Apple's 429 has to stop it
    async with httpx.AsyncClient(base_url=url, headers=shop.publisher.headers) as api:
        ids = await _burst(shop, api)
        seen = await _settled(api, ids, BURST / APPLE_BUDGET * WINDOW_S + 30)
    assert seen <= {"SUBSCRIPTION_CREATED", "seen processing"}, seen
    refused = await _calls(shop, 429)
    print(f"429s answered: {refused}")
    assert 1 <= refused <= 2 * 16, refused  # those in flight when it came; then everyone waits
    assert await _calls(shop, 200) == BURST
