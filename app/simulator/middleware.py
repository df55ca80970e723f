"""The simulator's own ASGI middleware base: it depends on nothing else in ``app``."""

from __future__ import annotations

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
