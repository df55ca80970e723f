"""A TCP proxy in front of PostgreSQL that a test can cut and restore, to lose the database."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

from app.db import with_database


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    try:
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class PgProxy:
    def __init__(self, server_url: str) -> None:
        self.target = urlsplit(server_url)
        self.up = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    async def _connect_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = parse_qs(self.target.query).get("host", [None])[0]
        port = self.target.port or 5432
        if socket_dir and socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        return await asyncio.open_connection(self.target.hostname or "127.0.0.1", port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        target_reader, target_writer = await self._connect_target()
        self._writers.update((writer, target_writer))
        await asyncio.gather(
            _pipe(reader, target_writer, self._flowing),
            _pipe(target_reader, writer, self._flowing),
        )

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        finally:
            self._tasks.discard(task)

    def cut(self) -> None:
        """Lose the database: drop every open connection and refuse new ones."""
        self.up = False
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True
        self._flowing.set()

    def stall(self) -> None:
        """Lose the database without a word: open connections stay open, nothing goes through
        them (a failover, a dropped NAT entry) until `restore()`."""
        self._flowing.clear()

    def url(self, database: str) -> str:
        return with_database(f"postgresql://postgres@127.0.0.1:{self.port}", database)

    async def stop(self) -> None:
        self._flowing.set()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
