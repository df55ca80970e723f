"""The hand-written migrations: they match the models, and they go down and up again."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.clock import MovableClock
from app.migrate import asyncpg_url, migrate
from app.models import Base
from app.security import hash_token
from tests.helpers.api import make_settings, running


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def _differences(url: str) -> list[object]:
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_diff)
    finally:
        await engine.dispose()


def test_migrations_match_the_models(scratch_url: str) -> None:
    migrate(scratch_url)
    assert asyncio.run(_differences(scratch_url)) == []


def test_down_and_up_again(scratch_url: str) -> None:
    migrate(scratch_url)
    from alembic import command

    from app.migrate import alembic_config

    command.downgrade(alembic_config(scratch_url), "base")
    migrate(scratch_url)
    assert asyncio.run(_differences(scratch_url)) == []


async def _fetch(url: str, sql: str, *args: object) -> list[dict[str, object]]:
    connection = await asyncpg.connect(url)
    try:
        return [dict(row) for row in await connection.fetch(sql, *args)]
    finally:
        await connection.close()


def test_publisher_tokens_move_unchanged_and_keep_working(scratch_url: str, tmp_path: Path) -> None:
    """0010 moves each publisher's token hash into publisher_tokens: the token it was given
    keeps working, now under a tokenId; going back down keeps the oldest token."""
    from alembic import command

    from app.migrate import alembic_config

    migrate(scratch_url, "0008")
    token = "skp_" + secrets.token_urlsafe(32)
    asyncio.run(
        _fetch(
            scratch_url,
            "INSERT INTO publishers (id, name, token_hash) VALUES (123456789, 'Kept', $1)",
            hash_token(token),
        )
    )
    migrate(scratch_url)
    (moved,) = asyncio.run(_fetch(scratch_url, "SELECT * FROM publisher_tokens"))
    assert moved["publisher_id"] == 123456789 and moved["token_hash"] == hash_token(token)

    async def offers_with_the_old_token() -> int:
        settings = make_settings(scratch_url, tmp_path)
        async with running(settings, MovableClock()) as (_, client):
            answer = await client.get(
                "/admin/publishers/123456789/offers", headers={"X-Publisher-Token": token}
            )
            return answer.status_code

    assert asyncio.run(offers_with_the_old_token()) == 200
    command.downgrade(alembic_config(scratch_url), "0008")
    (back,) = asyncio.run(_fetch(scratch_url, "SELECT token_hash FROM publishers"))
    assert back["token_hash"] == hash_token(token)
