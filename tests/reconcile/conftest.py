"""The reconciliation's tests: a database of their own (`tests.helpers.reconcile`), a shop wired
to the simulator, the service served on loopback for Apple's posts (`tests.helpers.appstore`),
the worker run on demand."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from app.config import Settings
from app.simulator.server import SimulatorServer
from tests.helpers.shop import sync_settings


@pytest.fixture
def settings(
    reconcile_database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(reconcile_database_url, data_dir, simulator, root_path)


@pytest.fixture(autouse=True)
async def _alone(reconcile_database_url: str) -> None:
    """Each test's passes see its own publisher only: the integrations of earlier tests are
    switched off (a pass reads no history of theirs, and the safety net has no app to ask)."""
    connection = await asyncpg.connect(reconcile_database_url)
    try:
        await connection.execute("UPDATE storekit2_integrations SET active = false")
    finally:
        await connection.close()
