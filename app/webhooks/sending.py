"""One delivery attempt over HTTP: the Cleeng envelope, Standard Webhooks signature, the POST.

One shared `httpx.AsyncClient` serves every delivery of a process (`context.services`), started
and closed by `app.runtime.Runtime`. Redirects are not followed and proxies from the environment
are not used: a delivery goes where the checked URL says, and nowhere else. Its transport checks
every request and every connection (`targets.PinnedTransport`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from app.config import Settings
from app.context import Context
from app.webhooks.schedule import RETRY_AFTER_STATUSES, retry_after_seconds
from app.webhooks.targets import (
    PinnedTransport,
    Resolver,
    TargetGuard,
    TargetRefused,
    parse_url,
)

HTTP_CLIENT = "webhook_http"
USER_AGENT = "storekit-sync-webhooks/0.1"
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 500


def new_http_client(
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The webhook client: every connection to a checked address (`resolver` looks names up,
    the system's DNS by default), certificates verified (against `verify`'s roots if given)."""
    timeout = httpx.Timeout(settings.webhook_timeout, connect=min(settings.webhook_timeout, 5.0))
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
    guard = TargetGuard(settings.webhook_allow_private_networks, resolver)
    return httpx.AsyncClient(
        transport=PinnedTransport(guard, verify=verify, limits=limits),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def start_http_client(context: Context) -> None:
    context.services[HTTP_CLIENT] = new_http_client(context.settings)


async def stop_http_client(context: Context) -> None:
    client = context.services.pop(HTTP_CLIENT, None)
    if client is not None:
        await client.aclose()


def http_client(context: Context) -> httpx.AsyncClient:
    client = context.services.get(HTTP_CLIENT)
    if not isinstance(client, httpx.AsyncClient):
        raise RuntimeError("the webhook HTTP client is not started (app.runtime.Runtime.start)")
    return client


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


def _error_text(text: str) -> str:
    return text[:MAX_ERROR_LENGTH]


async def send(
    client: httpx.AsyncClient, message: Message, settings: Settings, now: datetime
) -> Answer:
    """Try one delivery within WEBHOOK_TIMEOUT in all; never raises for the endpoint's faults."""
    timeout = settings.webhook_timeout
    started = time.monotonic()
    status: int | None = None
    retry_after: float | None = None
    try:
        async with asyncio.timeout(timeout):
            status, retry_after = await _post(client, message, now)
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except TargetRefused as exc:
        error = f"not sent: the URL {exc}"
    except (TimeoutError, httpx.TimeoutException):
        error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = _error_text(f"connection failed: {type(exc).__name__}: {exc}")
    duration_ms = int((time.monotonic() - started) * 1000)
    return Answer(status, error, retry_after, duration_ms)
