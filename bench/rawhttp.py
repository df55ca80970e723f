"""A small HTTP/1.1 keep-alive client on raw asyncio streams: far cheaper per request than httpx.

Only what the harness needs: one request at a time per connection, `Content-Length` or chunked
answers, reconnect after `Connection: close` or an error. It refuses any host but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
MAX_CHUNKS = 100_000


class HttpError(Exception):
    """A malformed or oversized answer."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


def _header_block(host: str, port: int, headers: Mapping[str, str]) -> str:
    lines = [f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return "".join(f"{line}\r\n" for line in lines)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"bad status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    for _ in range(MAX_CHUNKS):
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise HttpError("chunked body too large")
        body += await reader.readexactly(size + 2)
        del body[-2:]
    raise HttpError("too many chunks")


async def read_response(reader: asyncio.StreamReader, method: str) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = _parse_head(head[:-4])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(status, b"", headers)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return Response(status, await read_chunked(reader), headers)
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise HttpError("body too large")
    return Response(status, await reader.readexactly(length), headers)


class Connection:
    """One keep-alive connection to 127.0.0.1:`port`, opened on first use."""

    def __init__(
        self, port: int, headers: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> None:
        self.port, self.timeout = port, timeout
        self._headers = _header_block(LOOPBACK, port, headers or {})
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def _usable(self) -> bool:
        """An open connection the server has not hung up on (it closes idle ones: uvicorn
        after 5 s)."""
        reader, writer = self._reader, self._writer
        return not (reader is None or writer is None or writer.is_closing() or reader.at_eof())

    async def _open(self) -> bool:
        """Connect unless usable; True when the connection was already open (reused)."""
        if self._usable():
            return True
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(
            LOOPBACK, self.port, limit=MAX_HEAD
        )
        return False

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request and read its answer; any failure closes the connection. A reused
        connection that the server closed before answering anything is retried once, afresh
        (the server never saw the request)."""
        head = self._head(method, path, body, headers)
        try:
            async with asyncio.timeout(self.timeout):
                reused = await self._open()
                try:
                    return await self._exchange(head + body, method)
                except (asyncio.IncompleteReadError, ConnectionError) as error:
                    unanswered = not getattr(error, "partial", b"")
                    if not (reused and unanswered):
                        raise
                await self.close()
                await self._open()
                return await self._exchange(head + body, method)
        except BaseException:
            await self.close()
            raise

    def _head(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None
    ) -> bytes:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        return (
            f"{method} {path} HTTP/1.1\r\n{self._headers}{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")

    async def _exchange(self, data: bytes, method: str) -> Response:
        assert self._reader is not None and self._writer is not None
        self._writer.write(data)
        response = await read_response(self._reader, method)
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Pool:
    """Up to `size` keep-alive connections to one port; callers wait for a free one."""

    def __init__(
        self, port: int, size: int, headers: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> None:
        self._all = [Connection(port, headers, timeout) for _ in range(size)]
        self._idle: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for connection in self._all:
            self._idle.put_nowait(connection)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        connection = await self._idle.get()
        try:
            return await connection.request(method, path, body, headers)
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()
