"""docs/api.md §2 and §8: PostgreSQL away for ten seconds under a real `serve` process, a server's
connections refused (through a proxy) and the embedded server stopped and started again in the same
DATA_DIR. While it is away the API answers 503 S0002 within a second and /readyz is 503; once it is
back everything resumes with no restart of the service: nothing accepted is stuck or lost, webhooks
included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app import embedded_postgres
from app.context import Context
from app.db import CONNECT_TIMEOUT
from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.pgproxy import PgProxy
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready
from tests.helpers.receiver import Receiver
from tests.helpers.shop import Shop, open_shop

OUTAGE_SECONDS = 10.0


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(server_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def served(
    proxy: PgProxy,
    database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> AsyncIterator[str]:
    """The service as a real process, reaching PostgreSQL only through the proxy."""
    database = proxy.url(urlsplit(database_url).path.lstrip("/"))
    async for url in _serve(data_dir, simulator, root_path, tmp_path, DATABASE_URL=database):
        yield url


@pytest.fixture
async def served_embedded(
    simulator: SimulatorServer, root_path: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """The service as a real process, with no DATABASE_URL: it runs its embedded PostgreSQL."""
    async for url in _serve(tmp_path / "data", simulator, root_path, tmp_path):
        yield url


async def _serve(
    data_dir: Path, simulator: SimulatorServer, root_path: Path, tmp_path: Path, **more: str
) -> AsyncIterator[str]:
    port = free_port()
    env = clean_env(
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        APPLE_ROOT_CERTIFICATES=str(root_path),
        APPLE_API_BASE_URL=simulator.base_url,
        APPLE_ONLINE_CHECKS="false",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        **more,
    )
    service = ServiceProcess(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        await _until(lambda: is_ready(url), 60)
        yield url
    finally:  # in a thread: the proxy lives on this loop, and must relay the goodbyes
        await asyncio.to_thread(service.stop)


async def _until(check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _timed(call: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer: httpx.Response = await call  # type: ignore[misc]
    return answer, time.monotonic() - started


async def test_ten_seconds_without_postgresql(shop: Shop, served: str, proxy: PgProxy) -> None:
    async def cut() -> None:  # on this loop: the proxy's connections live here
        proxy.cut()

    async def restore() -> None:
        proxy.restore()

    await _through_an_outage(shop, served, cut, restore)


async def test_the_embedded_postgresql_stopped_and_started_again(
    served_embedded: str, sim: httpx.AsyncClient, context: Context, tmp_path: Path
) -> None:
    """As an operator would: `pg_ctl stop` on DATA_DIR/postgres, then start it again there."""
    pgdata = embedded_postgres.pgdata_path(tmp_path / "data")
    async with httpx.AsyncClient(base_url=served_embedded, timeout=10) as client:
        shop = await open_shop(client, sim, context)  # in the service's own database

    async def stop() -> None:  # the commands the service itself runs, pg_ctl's
        await asyncio.to_thread(embedded_postgres._pg_ctl, pgdata, ["stop", "-m", "fast"])

    async def start() -> None:
        await asyncio.to_thread(embedded_postgres._pg_ctl_start, pgdata)

    await _through_an_outage(shop, served_embedded, stop, start)


async def _through_an_outage(
    shop: Shop,
    served: str,
    away: Callable[[], Awaitable[None]],
    back: Callable[[], Awaitable[None]],
) -> None:
    with Receiver() as receiver:
        async with httpx.AsyncClient(base_url=served, headers=shop.publisher.headers) as api:
            url = "/3.1/webhook_subscriptions/inappPurchaseSyncResult"
            answer = await api.put(url, json=[{"url": receiver.url("results")}])
            assert answer.status_code == 200, answer.text
            shown = answer.json()[0]["verification"]["options"]["sharedSecret"]
            receiver["results"].secret = shown
            accepted = await _outage(shop, api, away, back)
            await _until(lambda: is_ready(served), 15)
            accepted += [await _register(shop, api) for _ in range(3)]
            await _all_finalized(api, accepted)
        await _until(lambda: _delivered(receiver, accepted), 30)


async def _register(shop: Shop, api: httpx.AsyncClient) -> str:
    bought = await shop.purchase()
    body = {"cleengCustomerId": shop.customers[0], "transactionId": bought["transactionId"]}
    answer = await api.post("/storekit2/purchases", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["synchronizationId"])


async def _outage(
    shop: Shop,
    api: httpx.AsyncClient,
    away: Callable[[], Awaitable[None]],
    back: Callable[[], Awaitable[None]],
) -> list[str]:
    """Registers just before the cut (their syncs must survive it), then ten seconds of requests
    that must each be refused at once: none waits out a connect timeout (what a hang costs), and
    nine in ten answer within a second (a loaded machine may delay one past it: this test runs
    the proxy and the client on one event loop)."""
    accepted = [await _register(shop, api) for _ in range(3)]
    await away()
    ends, answered, times = time.monotonic() + OUTAGE_SECONDS, 0, []
    while time.monotonic() < ends:
        bought = await shop.purchase()
        body = {"cleengCustomerId": shop.customers[0], "transactionId": bought["transactionId"]}
        for answer, took in (
            await _timed(api.post("/storekit2/purchases", json=body)),
            await _timed(api.get("/readyz")),
            await _timed(api.get(f"/purchases/synchronizations/{accepted[0]}")),
        ):
            assert answer.status_code == 503 and answer.json()["code"] == "S0002", answer.text
            assert "retry-after" in answer.headers
            assert took < CONNECT_TIMEOUT, f"{answer.request.url.path} took {took:.2f} s"
            times.append(took)
            answered += 1
    assert answered >= 30
    times.sort()
    assert times[int(len(times) * 0.9)] < 1.0, f"answers took {times}"
    await back()
    return accepted


async def _all_finalized(api: httpx.AsyncClient, accepted: list[str]) -> None:
    deadline = time.monotonic() + 60
    for sync_id in accepted:
        while (await api.get(f"/purchases/synchronizations/{sync_id}")).json()[
            "status"
        ] != "finalized":
            assert time.monotonic() < deadline, f"sync {sync_id} is stuck"
            await asyncio.sleep(0.2)


def _delivered(receiver: Receiver, accepted: list[str]) -> bool:
    seen = {body["data"]["synchronizationId"] for body in receiver["results"].verified()}
    return set(accepted) <= seen
