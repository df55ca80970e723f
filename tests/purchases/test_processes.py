"""The invariants across real processes: one active sync under any concurrency, and nothing lost
or granted twice when a worker is killed with jobs in hand."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready, wait_until
from tests.helpers.shop import Shop


def _env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        **extra,
    )


@pytest.fixture
def two_apis(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[list[str]]:
    services, urls = [], []
    for name in ("api-a", "api-b"):
        port = free_port()
        args = ["serve", "--port", str(port), "--no-worker"]
        services.append(
            ServiceProcess(args, _env(database_url, data_dir), tmp_path / f"{name}.log")
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: all(is_ready(url) for url in urls), 30, "both API processes")
        yield urls
    finally:
        for service in services:
            service.stop()


async def test_64_concurrent_registers_through_two_processes(
    shop: Shop, two_apis: list[str]
) -> None:
    bought = await shop.purchase()
    body = {"cleengCustomerId": shop.customers[0], "transactionId": bought["transactionId"]}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"{two_apis[i % 2]}/storekit2/purchases",
                    json=body,
                    headers=shop.publisher.headers,
                )
                for i in range(64)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 63
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"SK2C0101"}
    count = await shop.context.db.fetchval(
        "SELECT count(*) FROM synchronizations WHERE publisher_id = $1 AND transaction_id = $2",
        shop.publisher.id,
        bought["transactionId"],
    )
    assert count == 1


def _worker(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root: Path, log: Path
) -> ServiceProcess:
    env = _env(
        database_url,
        data_dir,
        APPLE_ROOT_CERTIFICATES=str(root),
        APPLE_API_BASE_URL=simulator.base_url,
        APPLE_ONLINE_CHECKS="false",
        JOB_LEASE_SECONDS="3",
    )
    return ServiceProcess(["worker", "--concurrency", "64"], env, log)


async def _scalar(shop: Shop, sql: str, *args: object) -> int:
    return int(await shop.context.db.fetchval(sql, *args))


async def _wait_for(
    shop: Shop, sql: str, args: tuple[object, ...], expected: int, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while (got := await _scalar(shop, sql, *args)) != expected:
        assert time.monotonic() < deadline, f"waited {seconds}s for {expected}, have {got}: {sql}"
        await asyncio.sleep(0.1)


IN_HAND_OR_DONE = (
    "SELECT (SELECT count(*) FROM synchronizations WHERE publisher_id = $1 AND status = 'finalized')"
    " + (SELECT count(*) FROM jobs j JOIN synchronizations s ON s.id = j.payload->>'synchronizationId'"
    " WHERE s.publisher_id = $1 AND j.locked_by IS NOT NULL AND s.status <> 'finalized')"
)
AT_LEAST_TEN_DONE = "SELECT (count(*) >= 10)::int FROM synchronizations WHERE publisher_id = $1 AND status = 'finalized'"
FINALIZED = "SELECT count(*) FROM synchronizations WHERE publisher_id = $1 AND status = 'finalized'"


async def test_kill_9_with_50_syncs_in_flight(
    shop: Shop,
    database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> None:
    purchases = [await shop.purchase() for _ in range(50)]
    customers = [shop.customers[i % 3] for i in range(50)]
    sync_ids = [
        await shop.accepted(c, p["transactionId"])
        for c, p in zip(customers, purchases, strict=True)
    ]
    # About half of the Apple calls hang: the first worker finishes some syncs, holds the rest.
    await shop.fault("delay", delaySeconds=8.0, share=0.5)
    first = _worker(database_url, data_dir, simulator, root_path, tmp_path / "first.log")
    try:
        await _wait_for(shop, IN_HAND_OR_DONE, (shop.publisher.id,), 50, 30)
        await _wait_for(shop, AT_LEAST_TEN_DONE, (shop.publisher.id,), 1, 30)
    finally:
        first.stop(signal.SIGKILL)
    done_by_first = await _scalar(shop, FINALIZED, shop.publisher.id)
    assert 0 < done_by_first < 50, f"the kill should split the work, {done_by_first} were done"
    await shop.sim.delete("/sim/faults")
    second = _worker(database_url, data_dir, simulator, root_path, tmp_path / "second.log")
    try:
        await _wait_for(shop, FINALIZED, (shop.publisher.id,), 50, 60)
    finally:
        assert second.stop() == 0, second.output()
    for sync_id in sync_ids:
        assert (await shop.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
        topics = [topic for topic, _ in await shop.events(sync_id)]
        assert topics.count("inappPurchaseSyncResult") == 1, "finalized twice"
    subscriptions = await shop.subscriptions(limit=100)
    assert subscriptions["total"] == 50, "one subscription per purchase, none granted twice"
    originals = {item["originalTransactionId"] for item in subscriptions["items"]}
    assert originals == {p["originalTransactionId"] for p in purchases}
    created = await _scalar(
        shop,
        "SELECT count(*) FROM webhook_events WHERE publisher_id = $1 AND topic = 'subscriptionCreated'",
        shop.publisher.id,
    )
    assert created == 50


async def test_sigterm_finishes_what_the_worker_holds(
    shop: Shop,
    database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> None:
    purchases = [await shop.purchase() for _ in range(5)]
    for purchase in purchases:
        await shop.accepted(shop.customers[0], purchase["transactionId"])
    await shop.fault("delay", delaySeconds=2.0)
    worker = _worker(database_url, data_dir, simulator, root_path, tmp_path / "worker.log")
    try:
        await _wait_for(shop, IN_HAND_OR_DONE, (shop.publisher.id,), 5, 30)
    finally:
        assert worker.stop(signal.SIGTERM) == 0, worker.output()
    assert await _scalar(shop, FINALIZED, shop.publisher.id) == 5, "SIGTERM finished the held jobs"
