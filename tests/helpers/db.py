"""Looking into the database from a test: what the service wrote, read with plain SQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from app.db import Executor


async def scalar(db: Executor, sql: str, *args: Any) -> Any:
    return await db.fetchval(sql, *args)


async def count(db: Executor, sql: str, *args: Any) -> int:
    return int(await db.fetchval(sql, *args))


async def events(
    db: Executor, publisher_id: int, sync_id: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events of one sync (None: those no sync caused), in order."""
    rows = await db.fetch(
        "SELECT topic, payload FROM webhook_events WHERE publisher_id = $1"
        " AND synchronization_id IS NOT DISTINCT FROM $2 ORDER BY id",
        publisher_id,
        sync_id,
    )
    return [(str(row["topic"]), dict(json.loads(row["payload"]))) for row in rows]


async def create_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
