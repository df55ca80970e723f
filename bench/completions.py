"""When did a sync complete? Two sources with one interface:

- `Arrivals`: the sink's arrival time of the `inappPurchaseSyncResult` webhook, streamed from
  the sink as it happens (the primary measurement);
- `Polling`: when webhooks are unavailable, `GET /purchases/synchronizations/{id}` until it is
  `finalized`, taking the sync's own `updatedAt` (the service's clock, the same machine's) as the
  completion time, so the poll interval costs load but not precision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from bench.rawhttp import LOOPBACK, MAX_HEAD, Connection

MAX_STREAM_LINES = 100_000_000
POLL_INTERVAL = 0.05


class Completions(Protocol):
    description: str

    async def wait(self, sync_id: str, patience: float) -> float | None:
        """The completion time (time.monotonic()) of `sync_id`, or None after `patience` seconds."""
        ...

    async def close(self) -> None: ...


class Arrivals:
    description = "202 → inappPurchaseSyncResult webhook at the sink"

    def __init__(self, sink_port: int) -> None:
        self.sink_port = sink_port
        self.arrived: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_connection(
            LOOPBACK, self.sink_port, limit=MAX_HEAD
        )
        self._writer.write(
            f"GET /stream HTTP/1.1\r\nHost: {LOOPBACK}:{self.sink_port}\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        for _ in range(MAX_STREAM_LINES):
            line = await reader.readline()
            if not line:
                return
            sync_id, _, at_ns = line.decode().partition(" ")
            at = int(at_ns) / 1e9
            self.arrived[sync_id] = at
            waiter = self._waiters.pop(sync_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(at)

    async def wait(self, sync_id: str, patience: float) -> float | None:
        if sync_id in self.arrived:
            return self.arrived[sync_id]
        waiter = self._waiters.setdefault(sync_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), patience)
        except TimeoutError:
            return None
        finally:
            if not waiter.done():
                self._waiters.pop(sync_id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()


def _updated_at(body: bytes) -> float | None:
    """`updatedAt` of a finalized sync as time.monotonic(), or None if not finalized yet."""
    answer = json.loads(body)
    if answer.get("status") != "finalized":
        return None
    wall = datetime.fromisoformat(str(answer["updatedAt"])).timestamp()
    return wall - (time.time() - time.monotonic())


class Polling:
    description = "202 → finalized (polled; webhooks unavailable)"

    def __init__(self, service_port: int, headers: Mapping[str, str], connections: int = 8) -> None:
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._all = [Connection(service_port, headers) for _ in range(connections)]
        for connection in self._all:
            self._idle.put_nowait(connection)

    async def _poll(self, sync_id: str) -> float | None:
        connection = await self._idle.get()
        try:
            answer = await connection.request("GET", f"/purchases/synchronizations/{sync_id}")
        finally:
            self._idle.put_nowait(connection)
        return _updated_at(answer.body) if answer.status == 200 else None

    async def wait(self, sync_id: str, patience: float) -> float | None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
            with contextlib.suppress(Exception):
                done = await self._poll(sync_id)
                if done is not None:
                    return done
        return None

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()
