"""docs/api.md §2: a cut database connection is never a 500. Registers arrive at a real `serve` process
while its PostgreSQL backends are terminated, three times; every answer is a 202 or a 503
S0002, and every accepted sync is finalized, once."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready, wait_until
from tests.helpers.shop import Shop

TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


@pytest.fixture
def served(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path, tmp_path: Path
) -> Iterator[str]:
    port = free_port()
    env = clean_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        APPLE_ROOT_CERTIFICATES=str(root_path),
        APPLE_API_BASE_URL=simulator.base_url,
        APPLE_ONLINE_CHECKS="false",
        SYNC_RETRY_SCHEDULE="0.2,0.5,1,2",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    service = ServiceProcess(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: is_ready(url), 30, "the service")
        yield url
    finally:
        service.stop()
        print(service.output()[-6000:])


async def _cut(database_url: str, times: int, every: float) -> int:
    killed = 0
    for _ in range(times):
        await asyncio.sleep(every)
        connection = await asyncpg.connect(database_url)
        try:
            killed += int(await connection.fetchval(TERMINATE))
        finally:
            await connection.close()
    return killed


async def test_registers_through_three_cuts(shop: Shop, served: str, database_url: str) -> None:
    purchases = [await shop.purchase() for _ in range(60)]
    customers = itertools.cycle(shop.customers)
    answers: list[tuple[str, httpx.Response]] = []

    async def register(http: httpx.AsyncClient, bought: dict[str, object]) -> None:
        correlation = str(uuid.uuid4())
        body = {"cleengCustomerId": next(customers), "transactionId": bought["transactionId"]}
        headers = {**shop.publisher.headers, "Correlation-Id": correlation}
        answer = await http.post(f"{served}/storekit2/purchases", json=body, headers=headers)
        answers.append((correlation, answer))

    async with httpx.AsyncClient(timeout=30) as http:
        load = asyncio.gather(*(register(http, p) for p in purchases))
        killed = await _cut(database_url, 3, 0.15)
        await load
    codes = Counter(answer.status_code for _, answer in answers)
    assert killed > 0
    assert set(codes) <= {202, 503}, codes
    for _, answer in answers:
        if answer.status_code == 503:
            assert answer.json()["code"] == "S0002" and "retry-after" in answer.headers
    accepted = [c for c, a in answers if a.status_code == 202]
    assert accepted, codes
    retried = await _retry_refused(shop, served, answers)
    accepted += retried
    print(
        f"registers during three cuts ({killed} backends): {dict(codes)}; retried: {len(retried)}"
    )

    async def finalized() -> bool:
        polls = [await shop.poll(c) for c in accepted]
        return all(p["status"] == "finalized" for p in polls)

    async with asyncio.timeout(60):
        while not await finalized():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    once = await shop.context.db.fetchval(
        "SELECT count(*) = count(DISTINCT original_transaction_id) FROM subscriptions"
        " WHERE publisher_id = $1",
        shop.publisher.id,
    )
    assert once, "a purchase was granted twice"
    assert len(accepted) == len(purchases), "every register was accepted, at first or on retry"


async def _retry_refused(
    shop: Shop, served: str, answers: list[tuple[str, httpx.Response]]
) -> list[str]:
    """A client retries each 503 with the same Correlation-Id and body: it gets the sync that
    exists (202, the same id), never a second one and never a 409 about its own sync."""
    retried = []
    async with httpx.AsyncClient(timeout=30) as http:
        for correlation, refused in answers:
            if refused.status_code != 503:
                continue
            headers = {**shop.publisher.headers, "Correlation-Id": correlation}
            body = json.loads(refused.request.content)
            answer = await http.post(f"{served}/storekit2/purchases", json=body, headers=headers)
            assert answer.status_code == 202, answer.text
            assert answer.json()["synchronizationId"] == correlation
            retried.append(correlation)
    return retried
