"""The hand-written migrations: they match the models, and they go down and up again."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import asyncpg_url, migrate
from app.models import Base


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
