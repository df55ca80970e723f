"""docs/api.md §3's limit: a customer token with 20 failed registers or transfers in 10 minutes (a 422
answered to it, or a sync of its that finalized TRANSACTION_ID_NOT_FOUND or
PURCHASE_OWNED_BY_ANOTHER_CUSTOMER) gets 429 REQ0006 with `Retry-After` until the window has room;
the count is the database's, so it holds across app instances and processes; publisher tokens are
never limited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.clock import MovableClock
from app.config import Settings
from app.jobs.worker import Worker
from app.retention import service as retention
from tests.helpers.api import ADMIN_TOKEN, assert_envelope, running
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready, wait_until
from tests.helpers.shop import Shop

TRANSFERS = "/storekit2/purchases/transfers"
UNKNOWN = "1999999999999999"  # no purchase this service has synchronized


def _body(customer: int, transaction_id: str = UNKNOWN) -> dict[str, object]:
    return {"cleengCustomerId": customer, "transactionId": transaction_id}


async def _fail(http: httpx.AsyncClient, customer: int, headers: dict[str, str]) -> None:
    """One failed transfer: 422 SK2C0102, at once."""
    answer = await http.post(TRANSFERS, json=_body(customer), headers=headers)
    assert_envelope(answer, 422, "SK2C0102")


def _limited(answer: httpx.Response) -> int:
    """The 429's Retry-After, after checking the envelope."""
    body = assert_envelope(answer, 429, "REQ0006")
    assert body["message"] == "Too many requests"
    assert "20 failed registers or transfers in 10 minutes" in str(body["details"])
    return int(answer.headers["Retry-After"])


async def test_twenty_failures_across_two_instances_then_429_until_the_window_has_room(
    shop: Shop, settings: Settings, clock: MovableClock
) -> None:
    """Two app instances on one database (as two API processes would be): the failures of both
    count; the 21st request on either is refused until the oldest failure leaves the window."""
    customer = shop.customers[0]
    mine = await shop.customer_token(customer)
    bought = await shop.purchase()
    async with running(settings, clock) as (_, second):
        instances = (shop.client, second)
        for n in range(20):
            if n == 10:
                clock.advance(60)  # the second half a minute later
            await _fail(instances[n % 2], customer, mine)
        for http in instances:
            for path in ("/storekit2/purchases", TRANSFERS):
                answer = await http.post(
                    path, json=_body(customer, bought["transactionId"]), headers=mine
                )
                assert _limited(answer) == 540, "the oldest failure leaves the window in 9 min"
        clock.advance(539)
        assert (
            _limited(await second.post("/storekit2/purchases", json=_body(customer), headers=mine))
            == 1
        )
        clock.advance(1)  # the first half has left: ten failures in the window
        answer = await second.post(
            "/storekit2/purchases", json=_body(customer, bought["transactionId"]), headers=mine
        )
        assert answer.status_code == 202, answer.text


async def test_failed_syncs_count_too(shop: Shop, worker: Worker) -> None:
    customer, other = shop.customers[:2]
    mine = await shop.customer_token(customer)
    await shop.set_ownership("appAccountToken")
    theirs = await shop.purchase(appAccountToken=await shop.app_account_token(other))
    for _ in range(9):
        await _fail(shop.client, customer, mine)
    for n in range(10):  # transactions Apple does not know: TRANSACTION_ID_NOT_FOUND
        answer = await shop.register(customer, str(1_000_000 + n), headers=mine)
        assert answer.status_code == 202, answer.text
    assert await worker.drain() == 10
    answer = await shop.register(customer, theirs["transactionId"], headers=mine)
    assert answer.status_code == 202, "19 failures: one more is allowed"
    assert await worker.drain() == 1
    assert (await shop.poll(answer.json()["synchronizationId"]))["result"] == (
        "PURCHASE_OWNED_BY_ANOTHER_CUSTOMER"
    )
    _limited(await shop.register(customer, theirs["transactionId"], headers=mine))
    # Only this customer's token is limited: its publisher, and other customers, are not.
    assert (await shop.register(customer, theirs["transactionId"])).status_code == 202
    other_token = await shop.customer_token(other)
    assert (
        await shop.register(other, theirs["transactionId"], headers=other_token)
    ).status_code == 409


async def test_a_publisher_token_is_never_limited(shop: Shop, worker: Worker) -> None:
    customer = shop.customers[0]
    for _ in range(25):
        await _fail(shop.client, customer, shop.publisher.headers)
    for n in range(5):
        assert (await shop.register(customer, str(2_000_000 + n))).status_code == 202
    assert await worker.drain() == 5
    assert (await shop.register(customer, str(2_000_100))).status_code == 202
    mine = await shop.customer_token(customer)
    bought = await shop.purchase()
    answer = await shop.register(customer, bought["transactionId"], headers=mine)
    assert answer.status_code == 202, "the publisher's failures are not its customer's"


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )


@pytest.fixture
def two_processes(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[list[str]]:
    """Two API processes on the test database (they share its DATA_DIR, so the JWT key)."""
    services, urls = [], []
    for name in ("api-a", "api-b"):
        port = free_port()
        args = ["serve", "--port", str(port), "--no-worker"]
        log = tmp_path / f"{name}.log"
        services.append(ServiceProcess(args, _env(database_url, data_dir), log))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: all(is_ready(url) for url in urls), 30, "both API processes")
        yield urls
    finally:
        for service in services:
            service.stop()


async def test_the_count_holds_across_two_processes(shop: Shop, two_processes: list[str]) -> None:
    customer = shop.customers[1]
    mine = await shop.customer_token(customer)
    bought = await shop.purchase()
    async with httpx.AsyncClient(timeout=30) as http:
        failures = [
            http.post(f"{two_processes[n % 2]}{TRANSFERS}", json=_body(customer), headers=mine)
            for n in range(20)
        ]
        assert {a.status_code for a in await asyncio.gather(*failures)} == {422}
        for url in two_processes:
            answer = await http.post(
                f"{url}/storekit2/purchases",
                json=_body(customer, bought["transactionId"]),
                headers=mine,
            )
            assert 0 < _limited(answer) <= 600
            publisher = await http.post(
                f"{url}/storekit2/purchases",
                json=_body(customer, str(3_000_000)),
                headers=shop.publisher.headers,
            )
            assert publisher.status_code in (202, 409), publisher.text  # never 429


async def test_retention_forgets_customers_that_failed_long_ago(
    shop: Shop, clock: MovableClock
) -> None:
    old, recent = shop.customers[:2]
    clock.advance(-100 * 86_400)
    await _fail(shop.client, old, await shop.customer_token(old))
    clock.advance(100 * 86_400)
    await _fail(shop.client, recent, await shop.customer_token(recent))
    await retention.purge(shop.context.db, clock.now() - timedelta(days=90))
    kept = await shop.context.db.fetch(
        "SELECT customer_id FROM register_failures WHERE publisher_id = $1", shop.publisher.id
    )
    assert [row["customer_id"] for row in kept] == [recent]
