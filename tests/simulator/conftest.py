"""Fixtures: one simulator and one notification receiver on loopback ports for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import cast

import httpx
import pytest
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment

from app.simulator import SimulatorState
from app.simulator.server import BackgroundServer, SimulatorServer
from tests.helpers.simulator import MakeClient, Receiver, SimApp, register_app


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorState(seed=7)) as server:
        yield server


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with BackgroundServer(receiver.asgi()) as server:
        receiver.url = f"{server.base_url}/notifications"
        yield receiver


@pytest.fixture(autouse=True)
def _no_faults_left(sim: SimulatorServer, receiver: Receiver) -> Iterator[None]:
    yield
    sim.state.faults.clear()
    receiver.status_code = 200


@pytest.fixture(scope="session")
async def control(sim: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def app(control: httpx.AsyncClient, receiver: Receiver) -> SimApp:
    """A fresh app (its own bundle id and key) notified at the receiver."""
    return await register_app(control, receiver.url)


@pytest.fixture
async def apple(sim: SimulatorServer) -> AsyncIterator[MakeClient]:
    """Makes Apple's own async client pointed at the simulator; closes them all afterwards."""
    made: list[AsyncAppStoreServerAPIClient] = []

    def make(
        app: SimApp,
        environment: Environment = Environment.SANDBOX,
        base_url: str | None = None,
        private_key: str | None = None,
    ) -> AsyncAppStoreServerAPIClient:
        key = (private_key or app.private_key).encode()
        client = AsyncAppStoreServerAPIClient(
            key, app.key_id, app.issuer_id, app.bundle_id, environment
        )
        client._base_url = base_url or sim.base_url
        made.append(client)
        return client

    yield make
    for client in made:
        # Apple's library leaves async_close unannotated.
        await cast(Callable[[], Awaitable[None]], client.async_close)()
