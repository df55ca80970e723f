"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only (SPEC §5).

Checked when an endpoint is subscribed, before every request, and at every connection: the
webhook client's network backend (`PinnedBackend`) looks the name up, refuses unless every
address is allowed, and connects to a checked address, so DNS that changes in between (rebinding)
never leads a connection elsewhere. The URL's name stays the connection pool's key, the `Host`
header, the TLS server name and the name the certificate is verified against.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
RESOLVE_TIMEOUT = 5.0
PRIVATE = "resolves to a private, loopback or link-local address"
UNRESOLVABLE = "has a host that cannot be resolved"


class TargetRefused(Exception):
    """The URL is not one this service may call; the message says why (safe to show)."""


class UnresolvableHost(TargetRefused):
    """The host has no address (now)."""


class PrivateAddress(TargetRefused):
    """The host resolves to an address outside the public internet."""


def parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused("is not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("must be an http or https URL")
    if not parsed.host:
        raise TargetRefused("must name a host")
    return parsed


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv4-mapped or 6to4 IPv6 address leads to."""
    return address.ipv4_mapped or address.sixtofour


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; false for private, loopback, link-local,
    unspecified, multicast, reserved and shared ranges."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`, looked up in the loop's executor (never blocking the loop)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise UnresolvableHost(UNRESOLVABLE) from exc
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return sorted(dict.fromkeys(found), key=lambda a: a.version)  # IPv4 first


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


@dataclass(frozen=True)
class TargetGuard:
    """Which addresses webhook connections may use: public ones, or any when private networks
    are allowed; names are looked up with `resolver` (the system's DNS when None)."""

    allow_private: bool
    resolver: Resolver | None = None

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host` as of now, every one allowed; else TargetRefused."""
        found = await (self.resolver or resolve)(host, port)
        if not found:
            raise UnresolvableHost(UNRESOLVABLE)
        if not self.allow_private and not all(is_public(a) for a in found):
            raise PrivateAddress(PRIVATE)
        return found

    async def check(self, url: httpx.URL) -> None:
        """Refuse `url` when its host resolves to a private address now (nothing is looked up
        when those are allowed): a pooled connection opened earlier is not used either."""
        if not self.allow_private:
            await self.addresses(url.raw_host.decode("ascii"), default_port(url))


async def check_target(url: httpx.URL, allow_private: bool) -> list[IPAddress]:
    """The public addresses `url` may be sent to; [] when private networks are allowed (then
    nothing is looked up)."""
    if allow_private:
        return []
    return await TargetGuard(allow_private=False).addresses(
        url.raw_host.decode("ascii"), default_port(url)
    )


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to an address its guard checked for that very connection.

    httpcore asks for the URL's host name; TLS then runs over the returned stream with that name
    as server name and as the name the certificate must be valid for."""

    def __init__(
        self, guard: TargetGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure = httpcore.ConnectError("no address to connect to")
        for address in await self._guard.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a `PinnedBackend`, checking each request's URL first."""

    def __init__(
        self, guard: TargetGuard, *, verify: ssl.SSLContext | bool, limits: httpx.Limits
    ) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._guard = guard
        # httpx 0.28 takes no network backend: its pool is replaced by one that has ours
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._guard.check(request.url)
        return await super().handle_async_request(request)
