"""One delivery attempt over HTTP: the Cleeng envelope, Standard Webhooks signature, the POST.

One shared `httpx.AsyncClient` serves every delivery of a process (`app.webhooks.delivery`).
Redirects are not followed and proxies from the environment
are not used: a delivery goes where the checked URL says, and nowhere else. Its transport checks
every request and every connection (`targets.GuardedTransport`, on aiohttp).

An attempt that got no answer is recorded as a category the publisher can act on (timed out,
connection refused, TLS certificate not valid for the host...), never an exception's own text,
an address or an errno: `lastError` must not tell anyone which ports are open where.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from app.config import Settings
from app.webhooks.schedule import RETRY_AFTER_STATUSES, retry_after_seconds
from app.webhooks.targets import (
    GuardedTransport,
    Lookups,
    PrivateAddress,
    Resolver,
    TargetGuard,
    TargetRefused,
    UnresolvableHost,
    parse_url,
)

log = logging.getLogger(__name__)

USER_AGENT = "storekit-sync-webhooks/0.1"
MAX_RESPONSE_BYTES = 64 * 1024
NOT_SENT_PRIVATE = "not sent: the URL resolves to a private, loopback or link-local address"
UNRESOLVED = "could not resolve the host"
REFUSED = "connection refused"
CERTIFICATE = "TLS certificate not valid for the host"
TLS_FAILED = "TLS handshake failed"
CLOSED = "connection closed without an answer"
CONNECTION_FAILED = "connection failed"


def new_http_client(
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The webhook client: every connection to a checked address (`resolver` looks names up; by
    default the system's DNS, on the client's own `Lookups`), certificates verified (against
    `verify`'s roots if given)."""
    timeout = httpx.Timeout(settings.webhook_timeout, connect=min(settings.webhook_timeout, 5.0))
    own = None
    if resolver is None:
        own = Lookups()
        resolver = own.resolve
    guard = TargetGuard(settings.webhook_allow_private_networks, resolver)
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, verify=verify, limit=200, lookups=own),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def envelope(publisher_id: int, topic: str, data: dict[str, Any]) -> str:
    """Cleeng's body: the publisher as `broadcasterId`, the topic, and the event's data."""
    return json.dumps({"broadcasterId": publisher_id, "topic": topic, "data": data})


@dataclass(frozen=True)
class Message:
    url: str
    webhook_id: str
    body: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: the endpoint's status, or why there was none."""

    status_code: int | None
    error: str | None
    retry_after: float | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signature_headers(message: Message, signed_at: datetime) -> dict[str, str]:
    """Standard Webhooks headers, keyed with the UTF-8 bytes of the endpoint's secret."""
    key = "whsec_" + base64.b64encode(message.secret.encode()).decode()
    signature = Webhook(key).sign(message.webhook_id, signed_at, message.body)
    return {
        "Content-Type": "application/json",
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature,
    }


def signing_time() -> datetime:
    """The wall clock, not the injected one: receivers check `webhook-timestamp` against their
    own clocks (within minutes), so it must say when the request really left."""
    return datetime.now(UTC)


async def _read_some(response: httpx.Response) -> None:
    """Read a small answer to the end, so its connection can be reused; never a big one."""
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            return


async def _post(
    client: httpx.AsyncClient, message: Message, now: datetime
) -> tuple[int, float | None]:
    url = parse_url(message.url)
    headers = signature_headers(message, signing_time())
    request = client.build_request("POST", url, content=message.body.encode(), headers=headers)
    response = await client.send(request, stream=True)
    try:
        await _read_some(response)
    finally:
        await response.aclose()
    retry_after = response.headers.get("Retry-After")
    waits = response.status_code in RETRY_AFTER_STATUSES
    return response.status_code, retry_after_seconds(retry_after, now) if waits else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it, through httpx's and aiohttp's wrapping (which keep the original
    as a cause, as the context, or among their arguments)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, *current.args]
        pending += [e for e in linked if isinstance(e, BaseException)]


def _connection_failure(exc: httpx.HTTPError) -> str:
    """What went wrong on the way to an answer, as a category; never the exception's text."""
    causes = list(_chain(exc))
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in causes):
        return CERTIFICATE
    if any(isinstance(e, ssl.SSLError) for e in causes):
        return TLS_FAILED
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return REFUSED
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return CLOSED
    return CONNECTION_FAILED


def _refusal(exc: TargetRefused) -> str:
    if isinstance(exc, UnresolvableHost):
        return UNRESOLVED
    if isinstance(exc, PrivateAddress):
        return NOT_SENT_PRIVATE
    return f"not sent: the URL {exc}"  # fixed texts of `targets`, about the URL's form


async def send(
    client: httpx.AsyncClient, message: Message, settings: Settings, now: datetime
) -> Answer:
    """Try one delivery within WEBHOOK_TIMEOUT in all; never raises (but when cancelled): what
    went wrong is the answer's error, as a category."""
    timeout = settings.webhook_timeout
    started = time.monotonic()
    status: int | None = None
    retry_after: float | None = None
    try:
        async with asyncio.timeout(timeout):
            status, retry_after = await _post(client, message, now)
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except TargetRefused as exc:
        error = _refusal(exc)
    except (TimeoutError, httpx.TimeoutException):
        error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = _connection_failure(exc)
    except Exception:  # whatever else went wrong is an attempt that failed, never a lost job
        log.warning("webhook attempt failed unexpectedly", exc_info=True)
        error = CONNECTION_FAILED
    duration_ms = int((time.monotonic() - started) * 1000)
    return Answer(status, error, retry_after, duration_ms)
