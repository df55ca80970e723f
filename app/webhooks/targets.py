"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only (SPEC §5).

Checked when an endpoint is subscribed and again before every delivery (DNS may have changed
since: rebinding); a delivery then connects to the address it checked, not to a fresh lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT = 5.0


class TargetRefused(Exception):
    """The URL is not one this service may call; the message says why (safe to show)."""


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
        raise TargetRefused("has a host that cannot be resolved") from exc
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return sorted(dict.fromkeys(found), key=lambda a: a.version)  # IPv4 first


async def check_target(url: httpx.URL, allow_private: bool) -> list[IPAddress]:
    """The public addresses `url` may be sent to; [] when private networks are allowed (then
    nothing is looked up and the HTTP client resolves as usual)."""
    if allow_private:
        return []
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await resolve(url.raw_host.decode("ascii"), port)
    if not addresses or not all(is_public(a) for a in addresses):
        raise TargetRefused("resolves to a private, loopback or link-local address")
    return addresses


def pinned(url: httpx.URL, address: IPAddress | None) -> tuple[httpx.URL, dict[str, str]]:
    """For plain http, the URL that connects to the checked `address`, and the Host header of the
    original. https is left alone: verifying the certificate for the host name already stops a
    connection that DNS turned to anywhere else (and pooled connections stay per host name)."""
    if address is None or url.scheme != "http":
        return url, {}
    return url.copy_with(host=str(address)), {"Host": url.netloc.decode("ascii")}
