"""The benchmark's PostgreSQL: a scratch database on `DATABASE_URL`'s server, or on an embedded
server in a scratch directory; dropped (or stopped and deleted) afterwards."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from app.db import start_embedded, with_database


def plain_url(url: str) -> str:
    """asyncpg wants `postgresql://`; the service also accepts SQLAlchemy's spelling."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _embedded_server() -> str:
    """An embedded PostgreSQL in a directory of its own, deleted at exit after the server stops."""
    root = Path(tempfile.mkdtemp(prefix="storekit-bench-pg-"))
    # Registered before pgserver's own exit handler, so that it runs after the server has stopped.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return start_embedded(root)


async def _execute(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(server_url, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    configured = os.environ.get("DATABASE_URL")
    server = plain_url(configured) if configured else _embedded_server()
    name = f"storekit_bench_{secrets.token_hex(4)}"
    asyncio.run(_execute(server, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server, name)
    finally:
        asyncio.run(_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


PG_PROCESSES = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() OR backend_type <> 'client backend'"
)


async def postgres_pids(monitor: asyncpg.Connection) -> list[int]:
    """The server processes that work for this database: its backends, the server's background
    processes (shared with other databases on a shared server) and the postmaster."""
    rows = await monitor.fetch(PG_PROCESSES)
    pids = [int(row["pid"]) for row in rows]
    backend = int(await monitor.fetchval("SELECT pg_backend_pid()"))
    return [*pids, *_postmaster(backend)]


def _postmaster(backend_pid: int) -> list[int]:
    import psutil

    try:
        parent = psutil.Process(backend_pid).parent()
    except psutil.Error:
        return []
    return [parent.pid] if parent is not None else []
