"""The database: where it is (a server or the embedded PostgreSQL), the pool, who owns a transaction.

One data-access style: plain asyncpg, with every statement in a repository module
(`app/<domain>/repository.py`, `app/jobs/queue.py`). The SQLAlchemy models (`app/models.py`) are the
schema, for Alembic and for the tests; nothing writes through them.

**Who owns a transaction.** The request dependency (`app.api.deps.Tx`) or the job handler opens it
with `Database.transaction()` and it commits when that block ends; services and repositories take the
connection they are given and never begin, commit or roll back. One rule of shape: a single
statement is a transaction of its own, so a caller that needs just one statement (a register, a
claim, a delivery's outcome: the hot paths) runs it on the `Database` itself, which is an
`Executor` too: no BEGIN, no COMMIT, one round trip. Either way the choice is the caller's, visible
where it calls: `tx` or `db`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

Row = Mapping[str, Any]


class Executor(Protocol):
    """What a repository function needs: a connection (in the caller's transaction) or the
    `Database` (each statement its own transaction)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class Database:
    """The process's pool of asyncpg connections to the service's database."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool, self.url = pool, url

    @classmethod
    async def open(cls, url: str, *, size: int = 10) -> Database:
        """Connects lazily (`min_size=0`): a process may start before its database does."""
        pool = await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=size,
            timeout=5,
            command_timeout=30,
            max_inactive_connection_lifetime=300,
            reset=_reset,
        )
        return cls(pool, url)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction: committed when the block ends normally, rolled back otherwise."""
        async with self.pool.acquire() as connection, connection.transaction():
            yield connection

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own, outside any transaction (LISTEN, a statement per call)."""
        async with self.pool.acquire() as connection:
            yield connection

    async def ping(self) -> None:
        """Raises unless the database answers (readiness)."""
        await self.pool.fetchval("SELECT 1")

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self.pool.execute(query, *args))

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]:
        return list(await self.pool.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        row: Row | None = await self.pool.fetchrow(query, *args)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection must not carry back to the pool: an open transaction. asyncpg's default
    reset also clears session state (advisory locks, LISTEN, SET) that nothing here leaves on
    pooled connections, and costs a round trip on every release."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def is_database_outage(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached, as opposed to a bad query."""
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
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
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_database_outage(cause)


# The embedded PostgreSQL ------------------------------------------------------------------------

_embedded: dict[Path, Any] = {}


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
    import warnings

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


def with_database(url: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
