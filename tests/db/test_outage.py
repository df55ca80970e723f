"""docs/api.md §2 and §8: a lost database answers 503 S0002, and the service recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from app.clock import MovableClock
from app.db import is_database_outage
from app.main import create_app
from tests.helpers.api import ADMIN, assert_envelope, make_settings, new_customer, new_publisher
from tests.helpers.pgproxy import PgProxy


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(server_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def client(
    proxy: PgProxy, database_url: str, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The service, reaching its database through the proxy."""
    database = urlsplit(database_url).path.lstrip("/")
    app = create_app(make_settings(proxy.url(database), data_dir), clock=MovableClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def test_lost_database_is_503_then_recovers(
    proxy: PgProxy, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/readyz")).status_code == 200
    proxy.cut()
    assert_envelope(await client.get("/readyz"), 503, "S0002")
    answer = await client.post("/admin/publishers", json={"name": "x"}, headers=ADMIN)
    assert_envelope(answer, 503, "S0002")
    assert (await client.get("/healthz")).status_code == 200
    proxy.restore()
    await _ready_again(client)
    answer = await client.post("/admin/publishers", json={"name": "x"}, headers=ADMIN)
    assert answer.status_code == 201


async def _ready_again(client: httpx.AsyncClient, seconds: float = 10) -> None:
    """A connection that died with the database fails the one request that finds it (503), then
    the pool lets go of its old connections: ready again without a restart."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (answer := await client.get("/readyz")).status_code != 200:
        assert_envelope(answer, 503, "S0002")
        assert asyncio.get_running_loop().time() < deadline, "the service did not recover"
        await asyncio.sleep(0.05)


async def test_a_register_on_a_lost_database_is_503_then_recovers(
    proxy: PgProxy, client: httpx.AsyncClient
) -> None:
    """The register runs on the plain asyncpg pool, not the engine: the same promise."""
    publisher = await new_publisher(client)
    body = {
        "cleengCustomerId": await new_customer(client, publisher),
        "transactionId": "2000000123456789",
    }

    async def register() -> httpx.Response:
        url = "/storekit2/purchases"
        return await client.post(url, json=body, headers=publisher.headers)

    # No integration yet: a reachable database answers SK2C0004 before anything is written.
    assert_envelope(await register(), 500, "SK2C0004")
    proxy.cut()
    assert_envelope(await register(), 503, "S0002")
    proxy.restore()
    deadline = asyncio.get_running_loop().time() + 10
    while (answer := await register()).status_code == 503:
        assert_envelope(answer, 503, "S0002")
        assert asyncio.get_running_loop().time() < deadline, "the pool did not recover"
        await asyncio.sleep(0.05)
    assert_envelope(answer, 500, "SK2C0004")


async def test_connections_lost_while_idle_are_replaced_without_an_error(
    proxy: PgProxy, client: httpx.AsyncClient
) -> None:
    """Every pooled connection dies; the database is back at once. Nothing any of them would
    have sent had left: each kind of request is tried again on a fresh connection, and succeeds."""
    publisher = await new_publisher(client)
    body = {
        "cleengCustomerId": await new_customer(client, publisher),
        "transactionId": "2000000123456789",
    }
    register = ("/storekit2/purchases", body, publisher.headers)
    create = ("/admin/publishers", {"name": "x"}, ADMIN)  # a transaction (Tx)
    for path, json, headers in (register, create, register, create):
        proxy.cut()
        proxy.restore()
        answer = await client.post(path, json=json, headers=headers)
        assert answer.status_code in (201, 500), answer.text  # 500 SK2C0004: no integration
        assert answer.status_code == 201 or answer.json()["code"] == "SK2C0004"
        proxy.cut()
        proxy.restore()
        assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (asyncpg.UniqueViolationError("duplicate key value"), False),
        (asyncpg.InterfaceError("another operation is in progress"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_asyncpg_errors_mean_the_database_is_lost(error: Exception, outage: bool) -> None:
    assert is_database_outage(error) is outage


async def test_metrics_still_answer_while_the_database_is_lost(
    proxy: PgProxy, client: httpx.AsyncClient
) -> None:
    """The process's own metrics are what an operator needs most then; the database's gauges
    keep their last values."""
    proxy.cut()
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert "storekit_http_requests_total" in answer.text
