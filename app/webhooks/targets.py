"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only (docs/api.md §5).

Checked when an endpoint is subscribed, before every request, and at every connection: the
webhook client's resolver (`GuardedResolver`) looks the name up, refuses unless every address is
allowed, and hands the connection a checked address, so DNS that changes in between (rebinding)
never leads a connection elsewhere. The URL's name stays the connection pool's key, the `Host`
header, the TLS server name and the name the certificate is verified against. Names are looked
up on threads of their own (`Lookups`), never on those that Apple's work needs.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp
import aiohttp.abc
import httpx

from app.transport import AiohttpTransport, default_ssl_context, tcp_connector

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
RESOLVE_TIMEOUT = 5.0
LOOKUP_THREADS = 32  # threads of a process's webhook lookups, at most (blocked ones cost no CPU)
PRIVATE = "resolves to a private, loopback or link-local address"
UNRESOLVABLE = "has a host that cannot be resolved"
NOT_VALID_HOST = "has a host name that is not valid"
MAX_NAME, MAX_LABEL = 253, 63  # characters of a DNS name (without its final dot), of a label


class TargetRefused(Exception):
    """The URL is not one this service may call; the message says why (safe to show)."""


class UnresolvableHost(TargetRefused):
    """The host has no address (now)."""


class PrivateAddress(TargetRefused):
    """The host resolves to an address outside the public internet."""


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _valid_host_name(url: httpx.URL) -> bool:
    """An address, or a name DNS can carry: at most 253 characters, labels of 1 to 63, and each
    IDNA A-label (`xn--`) one that decodes."""
    try:
        url.host  # noqa: B018 (decodes the A-labels: raises for one that does not decode)
    except UnicodeError:  # idna.IDNAError is one
        return False
    host = url.raw_host.decode("ascii")
    if _literal(host) is not None:
        return True
    name = host.removesuffix(".")
    return len(name) <= MAX_NAME and all(0 < len(label) <= MAX_LABEL for label in name.split("."))


def parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused("is not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("must be an http or https URL")
    if not parsed.raw_host:
        raise TargetRefused("must name a host")
    if not _valid_host_name(parsed):
        raise TargetRefused(NOT_VALID_HOST)
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


def _getaddrinfo(host: str, port: int) -> list[str]:
    """The addresses of `host` as the system's resolver gives them (blocking)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _addresses(given: list[str]) -> list[IPAddress]:
    found = [ipaddress.ip_address(address.split("%", 1)[0]) for address in given]
    return sorted(dict.fromkeys(found), key=lambda a: a.version)  # IPv4 first


class Lookups:
    """The names of webhook targets, looked up on threads of their own: at most `threads`, made
    as lookups need them. Never on the loop's default executor, which runs Apple's signature
    checks (`asyncio.to_thread`) and the lookups of Apple's connections: name servers that never
    answer, which any publisher can point its endpoints at, must not hold those up.

    A lookup gives up after `timeout` seconds, but its thread is busy until the system's resolver
    gives up too (20 s and more); lookups of one name that overlap share one thread, so an
    endpoint checked before its request and again at its connection, or retried meanwhile, does
    not take more."""

    def __init__(self, threads: int = LOOKUP_THREADS, timeout: float = RESOLVE_TIMEOUT) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook-dns")
        self._timeout = timeout
        self._running: dict[tuple[str, int], asyncio.Future[list[str]]] = {}

    def _lookup(self, host: str, port: int) -> asyncio.Future[list[str]]:
        key = (host, port)
        running = self._running.get(key)
        if running is None:
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._pool, _getaddrinfo, host, port)
            self._running[key] = running
            running.add_done_callback(functools.partial(self._finished, key))
        return running

    def _finished(self, key: tuple[str, int], lookup: asyncio.Future[list[str]]) -> None:
        if self._running.get(key) is lookup:
            del self._running[key]
        if not lookup.cancelled():
            lookup.exception()  # retrieved, also when every caller gave up waiting

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host` (never blocking the loop); else UnresolvableHost."""
        literal = _literal(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self._timeout):
                infos = await asyncio.shield(self._lookup(host, port))
        except (OSError, TimeoutError, UnicodeError) as exc:  # UnicodeError: a name IDNA refuses
            raise UnresolvableHost(UNRESOLVABLE) from exc
        return _addresses(infos)

    def close(self) -> None:
        """No new lookups; those waiting for a thread are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


@dataclass(frozen=True)
class TargetGuard:
    """Which addresses webhook connections may use: public ones, or any when private networks
    are allowed; names are looked up with `resolver` (`Lookups.resolve`, or a test's)."""

    allow_private: bool
    resolver: Resolver

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host` as of now, every one allowed; else TargetRefused."""
        found = await self.resolver(host, port)
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


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's name lookup for webhook connections: the guard's addresses, each one checked for
    that very connection, so the connection goes to a checked address. aiohttp keeps the URL's
    name as the TLS server name and the name the certificate is verified against."""

    def __init__(self, guard: TargetGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in await self._guard.addresses(host, port)
        ]

    async def close(self) -> None:
        return None


class GuardedTransport(AiohttpTransport):
    """The webhook client's transport: each request's URL checked first (a pooled connection
    opened earlier is not used for a name that now resolves to a private address), and each new
    connection made to an address checked for it (`GuardedResolver`)."""

    def __init__(
        self,
        guard: TargetGuard,
        *,
        verify: ssl.SSLContext | None,
        limit: int,
        lookups: Lookups | None = None,
    ) -> None:
        """`lookups`: the transport's own, closed with it."""
        context = verify or default_ssl_context()
        super().__init__(tcp_connector(context, limit=limit, resolver=GuardedResolver(guard)))
        self._guard = guard
        self._lookups = lookups

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._guard.check(request.url)
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        await super().aclose()
        if self._lookups is not None:
            self._lookups.close()
