"""Test harness: a scratch database per run, on the server in DATABASE_URL or an embedded one.

The database is created fresh and migrated with Alembic, so every run also tests the migrations.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.db import start_embedded, with_database
from app.main import create_app
from app.migrate import migrate
from tests.helpers.api import PublisherRef, make_settings, new_publisher
from tests.helpers.db import create_database, drop_database

pytest_plugins = (
    "tests.helpers.browser",
    "tests.helpers.shop",
    "tests.helpers.appstore",
    "tests.helpers.webhooks",
    "tests.helpers.counting",
    "tests.helpers.reconcile",
)


def pytest_configure(config: pytest.Config) -> None:
    """Give every run its own temporary root.

    pytest keeps only the three newest numbered roots and deletes older ones, so a second run
    started meanwhile could delete the embedded database of this one.
    """
    if config.option.basetemp is None:
        root = tempfile.mkdtemp(prefix="storekit-sync-tests-")
        config.option.basetemp = root
        # Registered before the embedded server's exit handler, so it runs after the server stops.
        atexit.register(shutil.rmtree, root, ignore_errors=True)


def _server_url(tmp: Path) -> str:
    configured = os.environ.get("DATABASE_URL")
    return configured if configured else start_embedded(tmp / "embedded")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The PostgreSQL server the tests use (never a mock)."""
    return _server_url(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"sks_test_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(drop_database(server_url, name))


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    """A database of its own, empty (not migrated), dropped afterwards."""
    name = f"sks_mig_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    yield with_database(server_url, name)
    asyncio.run(drop_database(server_url, name))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(settings: Settings, clock: MovableClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def context(app: FastAPI) -> Context:
    """The running service's parts, as the app built them."""
    return cast(Context, app.state.context)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        yield http


@pytest.fixture
async def publisher(client: httpx.AsyncClient) -> PublisherRef:
    return await new_publisher(client)
