"""The webhook sink: a tiny HTTP server that answers every POST with 200 and records, per
`synchronizationId`, when its `inappPurchaseSyncResult` arrived (CLOCK_MONOTONIC, shared by every
process on the machine, in nanoseconds).

- `POST <any path>`: a webhook delivery; 200, empty body.
- `GET /records`: `{"syncResults": {id: ns}, "deliveries": n, "duplicates": n, "topics": {...}}`.
- `GET /stream`: the same arrivals as they come, one `<id> <ns>` line each (those so far first).
- `GET /healthz`: 200.

Run: `python -m bench.sink --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from bench.rawhttp import MAX_BODY, MAX_HEAD, read_chunked

SYNC_RESULT = "inappPurchaseSyncResult"
MAX_REQUESTS_PER_CONNECTION = 10_000_000
OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Records:
    def __init__(self) -> None:
        self.arrivals: dict[str, int] = {}
        self.topics: Counter[str] = Counter()
        self.deliveries = 0
        self.duplicates = 0
        self.subscribers: set[asyncio.StreamWriter] = set()

    def delivery(self, body: bytes, at_ns: int) -> None:
        self.deliveries += 1
        try:
            payload = json.loads(body)
            topic = str(payload.get("topic"))
            sync_id = str(payload["data"]["synchronizationId"]) if topic == SYNC_RESULT else ""
        except (ValueError, KeyError, TypeError, AttributeError):
            topic, sync_id = "unparsable", ""
        self.topics[topic] += 1
        if not sync_id:
            return
        if sync_id in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[sync_id] = at_ns
        line = f"{sync_id} {at_ns}\n".encode()
        for writer in list(self.subscribers):
            writer.write(line)

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "syncResults": self.arrivals,
                "deliveries": self.deliveries,
                "duplicates": self.duplicates,
                "topics": dict(self.topics),
            }
        ).encode()


def _json_answer(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    method, path = [*lines[0].split(" "), "", ""][:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return method, path, await read_chunked(reader)
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return method, path, await reader.readexactly(length)


async def _stream(
    records: Records, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    writer.write("".join(f"{k} {v}\n" for k, v in records.arrivals.items()).encode())
    records.subscribers.add(writer)
    try:
        await reader.read()  # until the harness hangs up
    finally:
        records.subscribers.discard(writer)


async def _serve_connection(
    records: Records, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    for _ in range(MAX_REQUESTS_PER_CONNECTION):
        method, path, body = await _read_request(reader)
        if method == "POST":
            records.delivery(body, time.monotonic_ns())
            writer.write(OK_EMPTY)
        elif path == "/stream":
            await _stream(records, reader, writer)
            return
        elif path == "/records":
            writer.write(_json_answer(records.as_json()))
        else:
            writer.write(_json_answer(b'{"status":"ok"}'))


def _handler(records: Records) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            await _serve_connection(records, reader, writer)
        writer.close()

    return handle


async def serve(port: int) -> None:
    records = Records()
    server = await asyncio.start_server(
        _handler(records),
        "127.0.0.1",
        port,
        limit=MAX_HEAD,
        backlog=1024,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
        return
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
