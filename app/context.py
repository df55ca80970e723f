"""What a running service holds: settings, database, keys, clock. Built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import after_commit, create_engine, create_sessionmaker, resolve_database_url
from app.security import SecretBox, SigningKey, load_secret_key, load_signing_key

if TYPE_CHECKING:
    from app.apple.client import AppleGateway
    from app.jobs.worker import Waker


@dataclass
class Context:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    signing_key: SigningKey
    clock: Clock
    pool: asyncpg.Pool | None = None  # plain asyncpg, started by the runtime (`db.create_pool`)
    apple: AppleGateway | None = None
    waker: Waker | None = None
    services: dict[str, Any] = field(default_factory=dict)
    # token hash -> (publisher id, monotonic expiry); tokens cannot be rotated or revoked yet
    publisher_tokens: dict[str, tuple[int, float]] = field(default_factory=dict)

    def wake_workers_after_commit(self, session: AsyncSession) -> None:
        """Once `session` commits the jobs it wrote, wake the workers (no waker: nothing to do)."""
        if self.waker is not None:
            after_commit(session, self.waker.poke)

    def wake_workers(self) -> None:
        """Jobs were committed outside a session (a register): wake the workers now."""
        if self.waker is not None:
            self.waker.poke()

    @property
    def pg(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("the asyncpg pool is not started (app.runtime.Runtime.start)")
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        await self.engine.dispose()


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = resolve_database_url(settings.database_url, settings.data_dir)
    engine = create_engine(url)
    return Context(
        settings=settings,
        database_url=url,
        engine=engine,
        sessions=create_sessionmaker(engine),
        secrets=SecretBox(
            load_secret_key(settings.secret_key, settings.data_dir), settings.secret_key_previous
        ),
        signing_key=load_signing_key(
            settings.jwt_private_key, settings.data_dir, settings.jwt_private_key_previous
        ),
        clock=clock or SystemClock(),
    )
