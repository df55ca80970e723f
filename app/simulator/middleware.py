"""The simulator's own ASGI middleware (it depends on nothing else in ``app``): a base class,
writing the state after changes, and the optional control token."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests; anything else (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Apple's one POST that changes nothing.
READ_ONLY_POST = "/inApps/v1/notifications/history"


class PersistChanges(HttpMiddleware):
    """Calls ``persist`` after a request that may have changed the state (any but a read), before
    its answer starts: an answered change is on disk."""

    def __init__(self, app: ASGIApp, persist: Callable[[], None]) -> None:
        super().__init__(app)
        self._persist = persist

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in READS or str(scope["path"]).endswith(READ_ONLY_POST):
            await self.app(scope, receive, send)
            return

        async def persisting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._persist()
            await send(message)

        await self.app(scope, receive, persisting_send)


CONTROL_PREFIX = "/sim"
# The public root certificate may be fetched without the control token.
OPEN_CONTROL_PATHS = frozenset({"/sim/root.der", "/sim/root.pem"})


def is_control_path(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _bearer(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


class ControlToken(HttpMiddleware):
    """Every control request (``/sim``, but the root certificate) carries
    ``Authorization: Bearer <token>``, compared in constant time; else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope["path"])
        guarded = is_control_path(path) and path not in OPEN_CONTROL_PATHS
        if guarded and not hmac.compare_digest(_bearer(scope), self._token):
            await _unauthorized(send)
            return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = b'{"detail":"the control API needs Authorization: Bearer <control token>"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="simulator control"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CallCounter(HttpMiddleware):
    """Counts the calls to Apple's API by operation (method and route) and answer: what Apple's
    side of a benchmark or a test saw (`GET /sim/calls`)."""

    def __init__(self, app: ASGIApp, counts: dict[tuple[str, str, int], int]) -> None:
        super().__init__(app)
        self.counts = counts

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "/inApps/" not in str(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 0

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            key = (str(scope["method"]), str(route), status)
            self.counts[key] = self.counts.get(key, 0) + 1
