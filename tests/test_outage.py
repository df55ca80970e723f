"""SPEC §2 and §8: a lost database answers 503 S0002, and the service recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.clock import MovableClock
from app.main import create_app
from tests.conftest import ADMIN, make_settings
from tests.pgproxy import PgProxy
from tests.test_errors import assert_envelope


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(server_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_lost_database_is_503_then_recovers(
    proxy: PgProxy, database_url: str, data_dir: Path
) -> None:
    database = urlsplit(database_url).path.lstrip("/")
    app = create_app(make_settings(proxy.url(database), data_dir), clock=MovableClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
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
