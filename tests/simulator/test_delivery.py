"""What Apple records of each attempt to post a notification: its ``sendAttemptResult``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.simulator import SimulatorState
from app.simulator.server import BackgroundServer, SimulatorServer
from tests.helpers.simulator import buy, register_app

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def quick() -> Iterator[SimulatorServer]:
    """A simulator that gives up on a notification after 0.3 s."""
    with SimulatorServer(SimulatorState(notification_timeout=0.3)) as server:
        yield server


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """Status codes, redirects and a slow answer, over HTTP."""

    async def status(request: Request) -> Response:
        return Response(status_code=int(request.path_params["code"]))

    async def loop(_: Request) -> Response:
        return RedirectResponse("/loop", status_code=307)

    async def slow(_: Request) -> Response:
        await asyncio.sleep(1.0)
        return Response()

    routes = [
        Route("/status/{code}", status, methods=["POST"]),
        Route("/loop", loop, methods=["POST"]),
        Route("/moved", lambda _: RedirectResponse("/status/200", 307), methods=["POST"]),
        Route("/slow", slow, methods=["POST"]),
    ]
    with BackgroundServer(Starlette(routes=routes)) as server:
        yield server.base_url


async def _closes_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def _stops_halfway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SMTP READY\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serves one raw TCP behaviour on a loopback port; its URL."""
    servers: list[asyncio.Server] = []

    async def serve(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()


async def _first_result(simulator: SimulatorServer, url: str) -> str:
    async with httpx.AsyncClient(base_url=simulator.base_url, timeout=10) as control:
        app = await register_app(control, url)
        record = (await buy(control, app, "consumable", notify=True))["notification"]
    return str(record["attempts"][0]["sendAttemptResult"])


@pytest.mark.parametrize(
    ("path", "result"),
    [
        ("/status/200", "SUCCESS"),
        ("/status/204", "SUCCESS"),
        ("/status/206", "SUCCESS"),
        ("/status/207", "UNSUCCESSFUL_HTTP_RESPONSE_CODE"),
        ("/status/404", "UNSUCCESSFUL_HTTP_RESPONSE_CODE"),
        ("/status/500", "UNSUCCESSFUL_HTTP_RESPONSE_CODE"),
        ("/moved", "SUCCESS"),
        ("/loop", "CIRCULAR_REDIRECT"),
        ("/slow", "TIMED_OUT"),
    ],
)
async def test_http_outcomes(quick: SimulatorServer, web: str, path: str, result: str) -> None:
    assert await _first_result(quick, web + path) == result


@pytest.mark.parametrize(
    ("handler", "result"),
    [
        (_closes_at_once, "NO_RESPONSE"),
        (_stops_halfway, "PREMATURE_CLOSE"),
        (_garbage, "INVALID_RESPONSE"),
    ],
)
async def test_transport_outcomes(
    quick: SimulatorServer,
    raw: Callable[[Handler], Awaitable[str]],
    handler: Handler,
    result: str,
) -> None:
    assert await _first_result(quick, await raw(handler)) == result


async def test_tls_to_a_server_without_tls_is_a_tls_issue(quick: SimulatorServer, web: str) -> None:
    url = web.replace("http://", "https://") + "/status/200"
    assert await _first_result(quick, url) == "TLS_ISSUE"
