"""Activity end to end: purchases synced through the simulator, webhooks to a real receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.simulator.server import SimulatorServer
from tests.helpers.shop import sync_settings


@pytest.fixture
def settings(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(
        database_url, data_dir, simulator, root_path, webhook_allow_private_networks=True
    )
