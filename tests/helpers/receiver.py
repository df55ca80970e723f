"""A real webhook receiver on a loopback port: verifies every request with `standardwebhooks`.

Each named endpoint (`/hooks/{name}`) has its secret and a script of replies (status, headers,
delay); once the script runs out it answers 200. Runs under uvicorn in a daemon thread.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

START_TIMEOUT = 10.0


def whsec(secret: str) -> str:
    return "whsec_" + base64.b64encode(secret.encode()).decode()


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Arrival:
    """One request as it arrived; `payload` is set only when its signature verified."""

    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None
    problem: str | None
    arrived: float  # time.monotonic()


@dataclass
class Endpoint:
    secret: str | None = None
    replies: deque[Reply] = field(default_factory=deque)
    arrivals: list[Arrival] = field(default_factory=list)

    def verified(self) -> list[dict[str, Any]]:
        """The payloads that arrived; asserts that every request verified."""
        problems = [a.problem for a in self.arrivals if a.problem is not None]
        assert not problems, problems
        return [a.payload for a in self.arrivals if a.payload is not None]


def _verify(endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> Arrival:
    try:
        assert endpoint.secret is not None, "no secret known for this endpoint"
        payload = Webhook(whsec(endpoint.secret)).verify(body, headers)
    except Exception as exc:
        return Arrival(headers, body, None, f"{type(exc).__name__}: {exc}", time.monotonic())
    return Arrival(headers, body, payload, None, time.monotonic())


class Receiver:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/hooks/{name}", self._receive, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        self.endpoints.setdefault(name, Endpoint())
        return f"http://{host}:{self.port}/hooks/{name}"

    def __getitem__(self, name: str) -> Endpoint:
        return self.endpoints[name]

    async def _receive(self, request: Request) -> Response:
        endpoint = self.endpoints[request.path_params["name"]]
        arrival = _verify(endpoint, await request.body(), dict(request.headers))
        endpoint.arrivals.append(arrival)
        reply = endpoint.replies.popleft() if endpoint.replies else Reply()
        if arrival.problem is not None:
            reply = Reply(400)
        await asyncio.sleep(reply.delay)
        return Response(status_code=reply.status, headers=reply.headers)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "receiver down"
            time.sleep(0.005)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT)
        self._socket.close()
