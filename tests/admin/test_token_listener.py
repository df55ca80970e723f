"""The memory of publisher tokens (`app.admin.tokens`) when its listener loses the database:
loudly (a dropped connection) or silently (nothing goes through, nothing is closed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from app.admin.tokens import FRESH_SECONDS, PublisherTokens
from app.clock import MovableClock
from app.db import Database
from tests.helpers.api import ADMIN, PublisherRef
from tests.helpers.pgproxy import PgProxy


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(server_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def proxied(proxy: PgProxy, database_url: str) -> AsyncIterator[PublisherTokens]:
    """Another process's memory of tokens, reaching the database through the proxy."""
    db = await Database.open(proxy.url(urlsplit(database_url).path.lstrip("/")))
    tokens = PublisherTokens(db, MovableClock())
    try:
        yield tokens
    finally:
        await tokens.close()
        await db.close()


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _known(tokens: PublisherTokens, publisher: PublisherRef) -> None:
    """Look the token up until it is answered from memory."""
    deadline = time.monotonic() + 10
    while not tokens.is_known(publisher.token):
        assert await tokens.publisher_of(publisher.token) == publisher.id
        assert time.monotonic() < deadline, "the token never came to be kept in memory"
        await asyncio.sleep(0.01)


async def _revoke(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    url = f"/admin/publishers/{publisher.id}/tokens"
    (token,) = (await client.get(url, headers=ADMIN)).json()["items"]
    assert (await client.delete(f"{url}/{token['tokenId']}", headers=ADMIN)).status_code == 204


async def test_a_dropped_listener_reconnects_and_forgets_what_it_knew(
    proxy: PgProxy,
    proxied: PublisherTokens,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
) -> None:
    await _known(proxied, publisher)
    proxy.cut()
    await _until(lambda: not proxied.hearing(), 1.0, "the listener notices its loss")
    assert not proxied.is_known(publisher.token)
    await _revoke(client, publisher)  # while this process cannot hear it
    proxy.restore()
    await _until(lambda: proxied.connections == 2, 10, "the listener reconnects")
    assert await proxied.publisher_of(publisher.token) is None


async def test_a_silently_lost_listener_stops_answering_from_memory_within_a_second(
    proxy: PgProxy,
    proxied: PublisherTokens,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
) -> None:
    await _known(proxied, publisher)
    proxy.stall()  # the notification of the revoke will not get through
    await _revoke(client, publisher)
    took = await _until(
        lambda: not proxied.is_known(publisher.token), 1.0, "memory stops answering"
    )
    assert took <= FRESH_SECONDS + 0.05
    proxy.restore()
    assert await proxied.publisher_of(publisher.token) is None
