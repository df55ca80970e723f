"""Apple's side: the budget's tests run real `serve` processes, each of which runs a
reconciliation pass at start over every publisher in its database, and count the calls Apple
saw. They keep a database of their own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from app.db import with_database
from app.migrate import migrate
from tests.helpers.db import create_database, drop_database


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"sks_apple_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(drop_database(server_url, name))
