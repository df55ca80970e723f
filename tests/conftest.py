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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.db import start_embedded, with_database
from app.main import create_app
from app.migrate import migrate

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    """Give every run its own temporary root.

    pytest keeps only the three newest numbered roots and deletes older ones, so a second run
    started meanwhile could delete the embedded database of this one.
    """
    if config.option.basetemp is None:
        root = tempfile.mkdtemp(prefix="storekit-sync-tests-")
        config.option.basetemp = root
        # Registered before pgserver's own exit handler, so it runs after the server has stopped.
        atexit.register(shutil.rmtree, root, ignore_errors=True)


def _server_url(tmp: Path) -> str:
    configured = os.environ.get("DATABASE_URL")
    return configured if configured else start_embedded(tmp / "embedded")


async def _create_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The PostgreSQL server the tests use (never a mock)."""
    return _server_url(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"sks_test_{secrets.token_hex(4)}"
    asyncio.run(_create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(_drop_database(server_url, name))


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    """A database of its own, empty (not migrated), dropped afterwards."""
    name = f"sks_mig_{secrets.token_hex(4)}"
    asyncio.run(_create_database(server_url, name))
    yield with_database(server_url, name)
    asyncio.run(_drop_database(server_url, name))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "apple_online_checks": False,
        "log_format": "json",
        "log_level": "WARNING",
    }
    values.update(overrides)
    build: Any = Settings  # pydantic-settings takes `_env_file` beside the fields
    return cast(Settings, build(_env_file=None, **values))


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
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        yield http


ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


@dataclass
class PublisherRef:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Publisher-Token": self.token}


async def new_publisher(client: httpx.AsyncClient, name: str = "Acme TV") -> PublisherRef:
    answer = await client.post("/admin/publishers", json={"name": name}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return PublisherRef(body["publisherId"], body["publisherToken"])


async def new_customer(client: httpx.AsyncClient, publisher: PublisherRef) -> int:
    email = f"{secrets.token_hex(6)}@example.com"
    answer = await client.post(
        f"/admin/publishers/{publisher.id}/customers", json={"email": email}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["customerId"])


@pytest.fixture
async def publisher(client: httpx.AsyncClient) -> PublisherRef:
    return await new_publisher(client)
