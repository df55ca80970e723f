"""Apple's App Store Server API through Apple's own library: clients, verifiers, environments.

Quirks of `app-store-server-library` handled here (DESIGN decision 4): it has no base-URL setting
(we set `_base_url` for APPLE_API_BASE_URL), it makes its own httpx client per API client (we give
every client one shared, pooled one), it drops the `Retry-After` header of a 429 (we capture it
per task in `retry_after`), and it signs a new bearer token for every request (we reuse one for
four of its five minutes: an ES256 signature each time was about 2 % of a sync's CPU).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier

from app.apple.verifier import load_root_certificates, make_verifier
from app.config import Settings
from app.models import StoreKit2Integration
from app.security import SecretBox

retry_after: ContextVar[str | None] = ContextVar("apple_retry_after", default=None)

APPLE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# The library's bearer tokens expire five minutes after they are signed (Apple allows up to 60).
TOKEN_REUSE_SECONDS = 240.0


@dataclass(frozen=True)
class Integration:
    """A publisher's StoreKit 2 settings, with the private key decrypted (never logged)."""

    publisher_id: int
    bundle_id: str
    app_apple_id: int | None
    issuer_id: str
    key_id: str
    private_key: str
    environment: str  # Production | Sandbox | Auto
    updated_at: datetime

    def environments(self) -> list[Environment]:
        if self.environment == "Auto":
            return [Environment.PRODUCTION, Environment.SANDBOX]
        return [Environment(self.environment)]

    def __repr__(self) -> str:
        return f"Integration(publisher_id={self.publisher_id}, bundle_id={self.bundle_id!r})"

    @classmethod
    def from_record(cls, record: Mapping[str, Any], box: SecretBox) -> Integration:
        """From a `storekit2_integrations` row as asyncpg returns it."""
        return cls(
            publisher_id=record["publisher_id"],
            bundle_id=record["bundle_id"],
            app_apple_id=record["app_apple_id"],
            issuer_id=record["issuer_id"],
            key_id=record["key_id"],
            private_key=box.decrypt(record["private_key_encrypted"]),
            environment=record["environment"],
            updated_at=record["updated_at"],
        )

    @classmethod
    def from_row(cls, row: StoreKit2Integration, box: SecretBox) -> Integration:
        return cls.from_record({name: getattr(row, name) for name in FIELDS}, box)


FIELDS = (
    "publisher_id",
    "bundle_id",
    "app_apple_id",
    "issuer_id",
    "key_id",
    "private_key_encrypted",
    "environment",
    "updated_at",
)


class _Client(AsyncAppStoreServerAPIClient):
    """Apple's client, on a shared httpx client, remembering `Retry-After` of a 429, reusing its
    bearer token while it has more than a minute to live."""

    def __init__(
        self,
        integration: Integration,
        environment: Environment,
        http: httpx.AsyncClient,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            integration.private_key.encode(),
            integration.key_id,
            integration.issuer_id,
            integration.bundle_id,
            environment,
        )
        self._own_http = self.http_client
        self.http_client = http
        self._monotonic = monotonic
        self._token: tuple[str, float] | None = None  # the token, and until when to reuse it

    def _generate_token(self) -> str:
        now = self._monotonic()
        if self._token is None or now >= self._token[1]:
            self._token = (super()._generate_token(), now + TOKEN_REUSE_SECONDS)
        return self._token[0]

    async def _execute_request(self, *args: Any, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = await super()._execute_request(*args, **kwargs)
        if response.status_code == 429:
            retry_after.set(response.headers.get("retry-after"))
        return response

    async def close_own(self) -> None:
        await self._own_http.aclose()


class AppleGateway:
    """One API client per integration and environment, reused; one verifier likewise."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.roots = load_root_certificates(settings.apple_root_certificates)
        self.http = httpx.AsyncClient(
            timeout=APPLE_TIMEOUT,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )
        self._clients: dict[tuple[int, datetime, Environment], _Client] = {}
        self._verifiers: dict[tuple[int, datetime, Environment], SignedDataVerifier] = {}

    def client(self, integration: Integration, environment: Environment) -> _Client:
        key = (integration.publisher_id, integration.updated_at, environment)
        if key not in self._clients:
            client = _Client(integration, environment, self.http)
            if self.settings.apple_api_base_url:
                client._base_url = self.settings.apple_api_base_url
            self._clients[key] = client
        return self._clients[key]

    def verifier(self, integration: Integration, environment: Environment) -> SignedDataVerifier:
        key = (integration.publisher_id, integration.updated_at, environment)
        if key not in self._verifiers:
            self._verifiers[key] = make_verifier(
                self.roots,
                self.settings.apple_online_checks,
                environment,
                integration.bundle_id,
                integration.app_apple_id,
            )
        return self._verifiers[key]

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close_own()
        await self.http.aclose()
