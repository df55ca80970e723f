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

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app import embedded_postgres

Row = Mapping[str, Any]


class Executor(Protocol):
    """What a repository function needs: a connection (in the caller's transaction) or the
    `Database` (each statement its own transaction)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection broke (docs/api.md §2: 503 S0002).
    `unsent`: the statement certainly never reached the server, so nothing took effect."""

    def __init__(self, cause: BaseException, *, unsent: bool) -> None:
        super().__init__(f"database unavailable: {type(cause).__name__}")
        self.unsent = unsent


# Failures that happen before a statement leaves: the pool could not connect, or the connection
# was found closed (asyncpg raises these without sending anything).
_UNSENT = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)


def _lost(exc: BaseException, connection: asyncpg.Connection | None) -> DatabaseUnavailable | None:
    """The failure as a lost database, or None when it is the statement's own (a bad query, a
    constraint). A connection that is closed after the failure was lost, whatever asyncpg said
    (after the server ends a backend, the next statement may fail with a protocol-state error)."""
    closed = connection is not None and _closed(connection)
    if not (closed or is_database_outage(exc)):
        return None
    unsent = isinstance(exc, _UNSENT) or (
        isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)
    )
    # The server ended the backend while it ran the statement: it was rolled back, not committed.
    unsent = unsent or isinstance(exc, asyncpg.AdminShutdownError)
    return DatabaseUnavailable(exc, unsent=unsent)


def _closed(connection: asyncpg.Connection) -> bool:
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:  # already handed back to the pool: it cannot be used
        return True


class Connection:
    """One asyncpg connection as an `Executor`, its failures classified (`DatabaseUnavailable`)."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def _call(self, method: str, query: str, *args: Any) -> Any:
        try:
            return await getattr(self.raw, method)(query, *args)
        except Exception as exc:
            lost = _lost(exc, self.raw)
            if lost is None:
                raise
            raise lost from exc

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._call("execute", query, *args))

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]:
        return list(await self._call("fetch", query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        row: Row | None = await self._call("fetchrow", query, *args)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._call("fetchval", query, *args)


CONNECT_TIMEOUT = 2.0  # a refused or stopped database answers at once; this bounds the rest


class Database:
    """The process's pool of connections to the service's database.

    A connection problem (refused, dropped, restarted, a failover) surfaces as
    `DatabaseUnavailable` (503 S0002), never as a bug. What certainly did not take effect is tried
    once more on a fresh connection: a statement that never left, a read (`SELECT`), a statement
    its caller declared safe to repeat (`retrying`), and the BEGIN of a transaction. Anything else
    that broke mid-way may or may not have committed, so it is not repeated behind the caller's
    back: the caller hears 503 and retries with the same request (a register's replay answers the
    sync that exists).
    """

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool, self.url = pool, url
        self.retrying = _Retrying(self)

    @classmethod
    async def open(cls, url: str, *, size: int = 10) -> Database:
        """Connects lazily (`min_size=0`): a process may start before its database does."""
        pool = await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=30,
            max_inactive_connection_lifetime=300,
            reset=_reset,
        )
        return cls(pool, url)

    async def close(self, grace: float = 5.0) -> None:
        """Close every connection, politely for `grace` seconds (a server that no longer answers
        must not hold a stopping process), then at once."""
        try:
            await asyncio.wait_for(self.pool.close(), grace)
        except TimeoutError:
            self.pool.terminate()

    async def _acquire(self) -> asyncpg.Connection:
        try:
            return await self.pool.acquire()
        except Exception as exc:
            lost = _lost(exc, None)
            if lost is None:
                raise
            raise lost from exc

    async def _fresh(self) -> None:
        """After a lost connection, its pooled siblings are likely dead too: replace them all."""
        await self.pool.expire_connections()

    async def _begin(self) -> tuple[asyncpg.Connection, Any]:
        """A connection with its transaction begun: tried twice, as BEGIN has no effect."""
        for attempt in (1, 2):
            raw = await self._acquire()
            transaction = raw.transaction()
            try:
                await transaction.start()
            except Exception as exc:
                lost = _lost(exc, raw)
                await self.pool.release(raw)
                if lost is None:
                    raise
                if attempt == 2:
                    raise lost from exc
                await self._fresh()
                continue
            return raw, transaction
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One transaction: committed when the block ends normally, rolled back otherwise."""
        raw, transaction = await self._begin()
        try:
            try:
                yield Connection(raw)
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            await _commit(raw, transaction)
        finally:
            await self.pool.release(raw)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of its own, outside any transaction."""
        raw = await self._acquire()
        try:
            yield Connection(raw)
        finally:
            await self.pool.release(raw)

    async def ping(self) -> None:
        """Raises unless the database answers (readiness)."""
        await self.fetchval("SELECT 1")

    async def _run(self, method: str, query: str, args: tuple[Any, ...], repeat: bool) -> Any:
        for attempt in (1, 2):
            try:
                async with self.connection() as connection:
                    return await connection._call(method, query, *args)
            except DatabaseUnavailable as lost:
                if attempt == 2 or not (lost.unsent or repeat or _reads(query)):
                    raise
                await self._fresh()
        raise AssertionError("unreachable")

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._run("execute", query, args, False))

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]:
        return list(await self._run("fetch", query, args, False))

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        row: Row | None = await self._run("fetchrow", query, args, False)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args, False)


async def _commit(raw: asyncpg.Connection, transaction: Any) -> None:
    try:
        await transaction.commit()
    except Exception as exc:
        lost = _lost(exc, raw)
        if lost is None:
            raise
        raise lost from exc


class _Retrying:
    """The `Database` for statements whose caller made them safe to run twice (a register, which
    a second run answers with the sync the first one wrote): repeated once after any lost
    connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._db._run("execute", query, args, True))

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]:
        return list(await self._db._run("fetch", query, args, True))

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        row: Row | None = await self._db._run("fetchrow", query, args, True)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._db._run("fetchval", query, args, True)


def _reads(query: str) -> bool:
    """A plain read, repeatable at will (a SELECT; not a WITH, which may write)."""
    return query.lstrip()[:6].upper() == "SELECT"


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection must not carry back to the pool: an open transaction. asyncpg's default
    reset also clears session state (advisory locks, LISTEN, SET) that nothing here leaves on
    pooled connections, and costs a round trip on every release."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def is_database_outage(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached, as opposed to a bad query."""
    if isinstance(exc, DatabaseUnavailable | OSError | ConnectionError | TimeoutError):
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


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in `data_dir/postgres` and return its URL.

    Several processes may call this for one directory; the last of them to leave stops it
    (`app.embedded_postgres`).
    """
    return embedded_postgres.start(data_dir)


def stop_embedded() -> None:
    """Leave every embedded server this process joined (the last user stops it) now, not at exit."""
    embedded_postgres.stop()


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The libpq-style URL of the database: the configured one or the embedded server's."""
    return database_url if database_url else start_embedded(data_dir)


def with_database(url: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
