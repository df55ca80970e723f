"""The console end to end: purchases synced through the simulator, webhooks to a real receiver."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.console import Console
from tests.helpers.shop import sync_settings


@pytest.fixture
def settings(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(
        database_url, data_dir, simulator, root_path, webhook_allow_private_networks=True
    )


@pytest.fixture
async def operator(client: httpx.AsyncClient) -> Console:
    """Signed in with the admin token."""
    console = Console(client)
    assert (await console.sign_in(ADMIN_TOKEN)).status_code == 303
    return console
