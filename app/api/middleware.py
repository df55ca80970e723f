"""ASGI middleware: body size limit, request context for logs, metrics, the last-resort error
boundary."""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import unquote_plus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import is_database_outage
from app.errors import (
    CleengError,
    InternalError,
    InvalidBody,
    InvalidHeaders,
    InvalidPathParameters,
    PayloadTooLarge,
    ServiceUnavailable,
    detail,
)
from app.jobs.worker import Foreground
from app.logs import correlation_id_var
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("app.errors")

MAX_BODY = 64 * 1024
# docs/api.md §2: 1 to 256 printable characters; over 256 or a control character is malformed.
CORRELATION_ID = re.compile(r"^[\x20-\x7e]{1,256}$")
CORRELATION_RULE = "must be 1 to 256 printable ASCII characters"
BAD_ID = f"Invalid headers: Correlation-Id {CORRELATION_RULE}"


async def send_error(
    send: Send, error: CleengError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in error.headers().items()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised while reading a streamed body; FastAPI passes HTTPException through unchanged."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests; anything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ResponseWatch:
    """Wraps `send` to note the response's status once it has started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    @property
    def started(self) -> bool:
        return self.status is not None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)


class BodyLimit(HttpMiddleware):
    """Refuses bodies over 64 KiB with 413 REQ0005, from Content-Length before reading any of it,
    or as soon as a streamed body passes the limit."""

    limit = MAX_BODY

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await send_error(send, PayloadTooLarge(), [(b"connection", b"close")])
            return
        received = 0
        watch = ResponseWatch(send)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, watch.send)
        except _TooLarge:
            if not watch.started:
                await send_error(send, PayloadTooLarge(), [(b"connection", b"close")])


# A control character in a path or a query (NUL that PostgreSQL refuses, a newline that a
# route's pattern would let through and a number conversion would drop) is refused, not trimmed.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bad_bytes(scope: Scope) -> CleengError | None:
    path = scope.get("path", "")
    if CONTROL.search(path):
        problem = "must not contain control characters"
        message = f"Invalid path parameters: the path {problem}"
        return InvalidPathParameters(detail("path", problem), message)
    query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
    if CONTROL.search(query):
        problem = "must not contain control characters"
        message = f"Invalid query parameters: the query string {problem}"
        return InvalidBody(detail("query", problem), message)
    return None


class RequestContext(HttpMiddleware):
    """Refuses control characters in the path and query, validates `Correlation-Id` and puts it
    in the logging context for the request."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = _bad_bytes(scope)
        if refused is not None:
            await send_error(send, refused)
            return
        raw = _header(scope, b"correlation-id")
        if raw is not None and not CORRELATION_ID.fullmatch(raw.decode("latin-1")):
            await send_error(
                send, InvalidHeaders(detail("Correlation-Id", CORRELATION_RULE), BAD_ID)
            )
            return
        token = correlation_id_var.set(raw.decode() if raw else None)
        try:
            await self.app(scope, receive, send)
        finally:
            correlation_id_var.reset(token)


class ErrorBoundary(HttpMiddleware):
    """Anything unexpected becomes 500 S0001: logged with its trace, never returned."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = ResponseWatch(send)
        try:
            await self.app(scope, receive, watch.send)
        except Exception as exc:
            if watch.started:
                raise
            await send_error(send, _classify(exc, scope))


def _classify(exc: Exception, scope: Scope) -> CleengError:
    if is_database_outage(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return ServiceUnavailable()
    log.exception("unhandled error", extra={"fields": {"path": scope.get("path")}})
    return InternalError()


# Any other method (HTTP allows any token) is counted as "other": a label per raw method would
# let any client add series to /metrics without end.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    method = scope["method"]
    return method if method in METHODS else "other"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics(HttpMiddleware):
    """Counts and times every request by method, route template and status, and counts the
    requests in flight for the worker of this process (the API goes first)."""

    def __init__(self, app: ASGIApp, foreground: Foreground) -> None:
        super().__init__(app)
        self.foreground = foreground

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, watch = time.perf_counter(), ResponseWatch(send)
        self.foreground.enter()
        try:
            await self.app(scope, receive, watch.send)
        finally:
            self.foreground.leave()
            method, route = _method(scope), _route(scope)
            HTTP_REQUESTS.labels(method, route, str(watch.status or 500)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
