"""The names of webhook targets are looked up on threads of their own: a publisher whose
endpoints' name servers never answer holds none of the threads that Apple's signature checks
(`asyncio.to_thread`) and Apple's connections (aiohttp's threaded resolver, the loop's
`getaddrinfo`) need, and delays no other publisher's delivery.

Name servers that never answer are simulated by replacing `socket.getaddrinfo` for the names
under `slow.test`: the DNS of the outside world cannot be made slow for real on this machine (no
name server of ours is asked). The replacement blocks until the test releases it, then answers as
for a name that does not exist; every other name is looked up for real."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.webhooks.sending import Message, new_http_client, send
from tests.helpers.api import make_settings
from tests.helpers.receiver import Receiver
from tests.helpers.simulator import eventually

T = TypeVar("T")
SLOW = ".slow.test"
SECRET = "a-webhook-secret-of-32-characters"
HOSTILE = 24  # endpoints whose names never resolve, all at once
# The loop's default executor (what asyncio.to_thread and aiohttp's resolver use) has this many
# threads: enough of those lookups to fill it.
DEFAULT_THREADS = min(32, (os.cpu_count() or 1) + 4)
BOUND = 2.0  # seconds: generous for a loaded machine, far below any DNS timeout


class SlowNameServers:
    """`socket.getaddrinfo`, except that names under SLOW block until `release`."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0

    def getaddrinfo(self, host: object, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(SLOW):
            with self._lock:
                self.waiting += 1
            self.released.wait(60)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)

    async def blocking(self, at_least: int) -> bool | None:
        with self._lock:
            return True if self.waiting >= at_least else None


@pytest.fixture
def name_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowNameServers]:
    slow = SlowNameServers(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", slow.getaddrinfo)
    yield slow
    slow.released.set()


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """What `work` gives; fails when it takes longer than `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise AssertionError(f"still waiting after {seconds} s") from None


def _message(url: str) -> Message:
    return Message(url, "msg_lookups", '{"topic": "test"}', SECRET)


async def test_slow_name_servers_delay_neither_apple_s_threads_nor_other_deliveries(
    tmp_path: Path, receiver: Receiver, name_servers: SlowNameServers
) -> None:
    settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path,
        webhook_allow_private_networks=True,  # the receiver is on loopback
        webhook_timeout=30.0,
    )
    normal = receiver.url("lookups", "localhost")  # a name, looked up for real
    receiver["lookups"].secret = SECRET
    client = new_http_client(settings)
    now = datetime.now(UTC)
    hostile = [
        asyncio.create_task(send(client, _message(f"http://h{i}{SLOW}/hook"), settings, now))
        for i in range(HOSTILE)
    ]
    try:
        await eventually(lambda: name_servers.blocking(min(HOSTILE, DEFAULT_THREADS)))
        await _within(BOUND, asyncio.to_thread(lambda: None))  # as Apple's signature checks
        loop = asyncio.get_running_loop()
        assert await _within(BOUND, loop.getaddrinfo("localhost", 443))  # as Apple's connections
        answer = await _within(BOUND, send(client, _message(normal), settings, now))
        assert (answer.status_code, answer.error) == (200, None)
        assert len(receiver["lookups"].verified()) == 1
    finally:
        name_servers.released.set()
        answers = await asyncio.gather(*hostile)
        await client.aclose()
    assert {(a.status_code, a.error) for a in answers} == {(None, "could not resolve the host")}
