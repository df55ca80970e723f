"""Fault injection for the App Store Server API paths.

A fault applies to every call, or only to calls about one purchase (any of its transaction ids),
for a share of those calls, a number of times or until it is removed. ``not_json`` answers 200
with an HTML page, as a misbehaving proxy would. ``drop`` closes the
connection without an answer: the handler marks its response and :class:`DropConnectionMiddleware`,
sitting inside Starlette's error middleware, turns the mark into an exception after the response
has officially started but before a byte is written, which makes uvicorn close the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.simulator.middleware import HttpMiddleware

DROP_MARK = b"x-simulator-drop"


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    UNAUTHORIZED = "unauthorized"
    DELAY = "delay"
    DROP = "drop"
    NOT_FOUND = "not_found"
    NOT_JSON = "not_json"  # a 200 whose body is an HTML page, as a misbehaving proxy answers


@dataclass
class Fault:
    fault_id: str
    kind: FaultKind
    transaction_id: str | None = None
    share: float = 1.0
    times: int | None = None
    delay_seconds: float = 0.0
    retry_after_ms: int = 1000
    error_code: int | None = None  # not_found: Apple's 404 errorCode (default 4040010)
    hits: int = 0


class FaultBook:
    """The faults in force; ``rng`` decides the share, so a seeded one replays the same calls."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"fault-{next(self._ids)}"

    def add(self, fault: Fault) -> None:
        self._faults[fault.fault_id] = fault

    def remove(self, fault_id: str) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        self._faults.clear()

    def all(self) -> list[Fault]:
        return list(self._faults.values())

    def trigger(self, concerns: Callable[[str], bool]) -> list[Fault]:
        """The faults that fire for this call, used up by one each; ``concerns`` matches a scope."""
        fired = [fault for fault in self.all() if self._fires(fault, concerns)]
        for fault in fired:
            self._use(fault)
        return fired

    def _fires(self, fault: Fault, concerns: Callable[[str], bool]) -> bool:
        if fault.transaction_id is not None and not concerns(fault.transaction_id):
            return False
        return fault.share >= 1.0 or self._rng.random() < fault.share

    def _use(self, fault: Fault) -> None:
        fault.hits += 1
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(fault.fault_id, None)


def drop_response() -> Response:
    """A response that :class:`DropConnectionMiddleware` replaces with a closed connection."""
    return Response(status_code=500, headers={DROP_MARK.decode(): "1"})


class ConnectionDropped(Exception):
    """Raised on purpose to make the server close the connection without answering."""


class DropConnectionMiddleware(HttpMiddleware):
    """Turns a response marked by :func:`drop_response` into a closed connection."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_marked(message):
                await _drop(send)
            await send(message)

        await self.app(scope, receive, guarded_send)


def _is_marked(message: Message) -> bool:
    return any(name == DROP_MARK for name, _ in message.get("headers", []))


async def _drop(send: Send) -> None:
    # A header value with a newline is refused by uvicorn (both HTTP implementations) after the
    # response counts as started and before anything is written; the exception then makes it
    # close the transport instead of answering 500.
    poison = {"type": "http.response.start", "status": 500, "headers": [(b"x-drop", b"\n")]}
    with contextlib.suppress(Exception):
        await send(poison)
    raise ConnectionDropped
