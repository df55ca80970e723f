"""httpx on aiohttp: the service's outbound HTTP (Apple's API, webhooks) keeps httpx's interface,
which Apple's library is written against, and sends through aiohttp's connection pool.

httpx's own transport (httpcore on anyio) cost about 2 ms of CPU per request here; aiohttp's
about 0.4 ms, and a sync makes one call to Apple and at least one webhook POST. Errors come back as
httpx's own exceptions, each with aiohttp's (and the OS's or TLS's) error as its cause, so that
callers keep telling a refused connection from a certificate that does not fit, or a timeout.

aiohttp sends an idempotent request (Apple's GETs, never a webhook's POST) once more on a new
connection when the one it used drops without an answer: one immediate try, before the caller's
own retry schedule.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import httpx

READ_CHUNK = 64 * 1024


def _mapped(exc: Exception) -> httpx.TransportError:
    """httpx's exception for one of aiohttp's (the most specific first)."""
    kinds: list[tuple[type[Exception], type[httpx.TransportError]]] = [
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
        (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
        (asyncio.TimeoutError, httpx.ReadTimeout),
        (aiohttp.ClientConnectorError, httpx.ConnectError),  # DNS, refused, TLS and certificates
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.ReadError),
        (aiohttp.ClientOSError, httpx.ReadError),
    ]
    for kind, mapped in kinds:
        if isinstance(exc, kind):
            return mapped(type(exc).__name__)
    return httpx.NetworkError(type(exc).__name__)


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body, read as it comes; closing it gives the connection back to the
    pool when the body was read to its end, else closes the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(READ_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


def _timeout(extensions: Mapping[str, object]) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts in aiohttp's terms (aiohttp has no write timeout)."""
    given = extensions.get("timeout")
    limits: Mapping[str, float | None] = given if isinstance(given, Mapping) else {}
    return aiohttp.ClientTimeout(
        total=None, sock_connect=limits.get("connect"), sock_read=limits.get("read")
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends each request of an `httpx.AsyncClient` through one aiohttp session, made on first
    use inside the running loop by `connector` (a new `aiohttp.TCPConnector` per session)."""

    def __init__(self, connector: Callable[[], aiohttp.BaseConnector]) -> None:
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env off: no proxy from the environment; the caller's headers only
            self._session = aiohttp.ClientSession(
                connector=self._connector(), trust_env=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, as it would on its own transport
                timeout=_timeout(request.extensions),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _mapped(exc) from exc
        return httpx.Response(
            status_code=response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def tcp_connector(
    ssl_context: ssl.SSLContext,
    *,
    limit: int,
    keepalive: float = 30.0,
    resolver: aiohttp.abc.AbstractResolver | None = None,
) -> Callable[[], aiohttp.TCPConnector]:
    """A factory of aiohttp connectors: `limit` connections at most, idle ones kept `keepalive`
    seconds, names looked up by `resolver` on every new connection (no DNS cache) when given."""

    def make() -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(
            ssl=ssl_context,
            limit=limit,
            limit_per_host=0,
            keepalive_timeout=keepalive,
            resolver=resolver,
            use_dns_cache=resolver is None,
        )

    return make


def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the same roots httpx uses (certifi's)."""
    return httpx.create_ssl_context(trust_env=False)
