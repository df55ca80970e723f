"""Apple's calls, counted where Apple answers them: a second HTTP server over the very state of the
session's simulator (its apps, keys, purchases), which counts every App Store Server API call it
answers. A test that points the service's `APPLE_API_BASE_URL` at it (`counted_settings`) sees
each call the service made, by app and answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.simulator.application import create_app
from app.simulator.server import BackgroundServer, SimulatorServer
from tests.helpers.shop import sync_settings


@dataclass(frozen=True)
class Call:
    path: str
    bundle_id: str | None  # the `bid` of the bearer token: the app whose key signed it
    status: int


def _bundle_of(scope: Scope) -> str | None:
    """The `bid` claim of the bearer token, unverified (the simulator verifies it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            try:
                payload = value.decode().split(" ", 1)[1].split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            except (IndexError, ValueError):
                return None
            bid = claims.get("bid") if isinstance(claims, dict) else None
            return bid if isinstance(bid, str) else None
    return None


@dataclass
class CallCounter:
    """An ASGI app that passes every request on and notes the App Store Server API calls."""

    app: ASGIApp
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/inApps/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        self.calls.append(Call(scope["path"], _bundle_of(scope), status))

    def take(self) -> list[Call]:
        """The calls counted since the last take."""
        taken, self.calls = self.calls, []
        return taken


@dataclass
class CountedSimulator:
    server: BackgroundServer
    counter: CallCounter


@pytest.fixture(scope="session")
def counted_simulator(simulator: SimulatorServer) -> Iterator[CountedSimulator]:
    counter = CallCounter(create_app(simulator.state))
    with BackgroundServer(counter) as server:
        yield CountedSimulator(server, counter)


@pytest.fixture
def counted_settings(
    database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    counted_simulator: CountedSimulator,
    root_path: Path,
) -> Settings:
    """A shop's settings, Apple's calls going through the counter."""
    base_url = counted_simulator.server.base_url
    return sync_settings(database_url, data_dir, simulator, root_path, apple_api_base_url=base_url)


@pytest.fixture
def apple_calls(counted_simulator: CountedSimulator) -> CallCounter:
    counted_simulator.counter.take()
    return counted_simulator.counter
