"""The database: where it is (a server or the embedded PostgreSQL), the engine, the unit of work."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

_embedded: dict[Path, Any] = {}
AFTER_COMMIT = "after_commit"


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in `data_dir/postgres` and return its URL.

    Several processes may call this for one directory: pgserver shares the running server between
    them under a file lock and stops it when the last of them exits.
    """
    pgdata = (data_dir / "postgres").resolve()
    if pgdata not in _embedded:
        pgdata.mkdir(parents=True, exist_ok=True)
        _embedded[pgdata] = _join_embedded(pgdata)
        log.info("embedded PostgreSQL running", extra={"fields": {"pgdata": str(pgdata)}})
    return str(_embedded[pgdata].get_uri())


def stop_embedded() -> None:
    """Leave every embedded server this process joined (the last user stops it) now, not at exit."""
    while _embedded:
        _, server = _embedded.popitem()
        server.cleanup()


def _join_embedded(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pgserver import get_server  # type: ignore[attr-defined]  # only when embedded

        server = get_server(pgdata, cleanup_mode="stop")
    _forget_dead_processes(server)
    return server


def _forget_dead_processes(server: Any) -> None:
    """pgserver stops the server when its last user exits, counting users by pid in a file.

    A process killed with SIGKILL never removes its pid, which would keep the server running
    forever after the others exit; drop such pids while holding pgserver's own lock.
    """
    import psutil

    with server._lock:
        pids = server.global_process_id_list.get()
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            server.global_process_id_list.put(alive)


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The libpq-style URL of the database: the configured one or the embedded server's."""
    return database_url if database_url else start_embedded(data_dir)


def asyncpg_url(url: str) -> str:
    """Turn a `postgresql://` URL into SQLAlchemy's asyncpg form."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def with_database(url: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout. A connection found dead fails its
        # request (503 S0002), and SQLAlchemy then discards every connection older than it.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


async def create_pool(url: str, *, size: int = 10) -> asyncpg.Pool:
    """Plain asyncpg beside the engine, for one-statement hot paths (a register, a claim): about
    half the CPU of the same statement through a session (0.35 ms against 0.67 ms, measured).
    A connection found dead is dropped by the pool when it is released, so a lost database fails
    only the requests that find one."""
    return await asyncpg.create_pool(
        url,
        min_size=0,  # connects on first use: a process may start before its database
        max_size=size,
        timeout=5,
        command_timeout=30,
        max_inactive_connection_lifetime=300,
        reset=_reset,
    )


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection must not carry back to the pool: an open transaction. asyncpg's default
    reset also clears session state (advisory locks, LISTEN, SET) that nothing here sets on these
    connections, and costs a round trip on every release."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back otherwise.

    Services only flush; the request dependency or the job runner owns the commit.
    """
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        for callback in session.info.pop(AFTER_COMMIT, []):
            callback()


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the unit of work has committed (say, to wake the workers)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def is_database_outage(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached, as opposed to a bad query."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(
        exc, OSError | ConnectionError | TimeoutError | InterfaceError | OperationalError
    ):
        return True
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.OperatorInterventionError
        | asyncpg.TooManyConnectionsError,
    ):
        return True  # lost or refused connections, a server shutting down or starting, or full
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_database_outage(cause)
