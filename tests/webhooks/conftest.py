"""The webhooks tests: a database of their own, the app without its background worker, a real
receiver on loopback (`tests.helpers.webhooks`). Deliveries run only when a test calls `drain`,
never in the background."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from app.config import Settings
from tests.helpers.webhooks import webhook_settings


@pytest.fixture(autouse=True)
async def _no_jobs_left(webhooks_database_url: str) -> None:
    """Each test starts with an empty queue: what earlier tests left must not run in its drains."""
    connection = await asyncpg.connect(webhooks_database_url)
    try:
        await connection.execute("DELETE FROM jobs")
    finally:
        await connection.close()


@pytest.fixture
def settings(webhooks_database_url: str, data_dir: Path) -> Settings:
    """Overrides the root `settings`, so the root `app`, `client` and `publisher` use it."""
    return webhook_settings(webhooks_database_url, data_dir)
