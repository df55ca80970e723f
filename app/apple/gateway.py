"""Apple's App Store Server API for each publisher's app: its clients, its verifiers, environments."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier

from app.apple.cache import VersionedLru
from app.apple.library import AppleClient, Credentials, make_verifier
from app.apple.verifier import load_root_certificates
from app.config import Settings
from app.security import Purpose, SecretBox, row_binding

APPLE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
PRIVATE_KEY_PURPOSE: Purpose = "apple-private-key"


def private_key_binding(publisher_id: int, bundle_id: str) -> str:
    """What an app's sealed private key is bound to: the key of its row among the publisher's
    apps (publisher, bundle id), so that a ciphertext copied to another app does not open."""
    return row_binding("storekit2_apps", publisher_id, bundle_id)


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

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.private_key, self.key_id, self.issuer_id, self.bundle_id)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], box: SecretBox) -> Integration:
        """From a `storekit2_integrations` row (the columns of `FIELDS`)."""
        return cls(
            publisher_id=record["publisher_id"],
            bundle_id=record["bundle_id"],
            app_apple_id=record["app_apple_id"],
            issuer_id=record["issuer_id"],
            key_id=record["key_id"],
            private_key=box.open(
                record["private_key_encrypted"],
                purpose=PRIVATE_KEY_PURPOSE,
                bound_to=private_key_binding(record["publisher_id"], record["bundle_id"]),
            ),
            environment=record["environment"],
            updated_at=record["updated_at"],
        )


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


AppKey = tuple[int, str, Environment]  # publisher, bundle id, environment
CACHED_APPS = 1000  # clients (and, apart, verifiers) kept: one per app and environment in use


class AppleGateway:
    """One API client per app and environment, reused while the app's settings stay as they are;
    one verifier likewise. At most `cache_size` of each: the least recently used goes first, and
    a client dropped (or replaced after a change of its app) has its own HTTP pool closed."""

    def __init__(self, settings: Settings, cache_size: int = CACHED_APPS) -> None:
        self.settings = settings
        self.roots = load_root_certificates(settings.apple_root_certificates)
        self.http = httpx.AsyncClient(
            timeout=APPLE_TIMEOUT,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )
        self._clients: VersionedLru[AppKey, AppleClient] = VersionedLru(cache_size, self._retire)
        self._verifiers: VersionedLru[AppKey, SignedDataVerifier] = VersionedLru(cache_size)
        self._closing: set[asyncio.Task[None]] = set()

    @staticmethod
    def _key(integration: Integration, environment: Environment) -> AppKey:
        return (integration.publisher_id, integration.bundle_id, environment)

    def client(self, integration: Integration, environment: Environment) -> AppleClient:
        def make() -> AppleClient:
            base_url = self.settings.apple_api_base_url
            return AppleClient(integration.credentials, environment, self.http, base_url)

        key = self._key(integration, environment)
        return self._clients.get(key, integration.updated_at, make)

    def verifier(self, integration: Integration, environment: Environment) -> SignedDataVerifier:
        def make() -> SignedDataVerifier:
            return make_verifier(
                self.roots,
                self.settings.apple_online_checks,
                environment,
                integration.bundle_id,
                integration.app_apple_id,
            )

        key = self._key(integration, environment)
        return self._verifiers.get(key, integration.updated_at, make)

    def _retire(self, client: AppleClient) -> None:
        """Close a dropped client's own HTTP pool (the library's, never used: calls in flight go
        through the shared one, so they are not disturbed)."""
        try:
            task = asyncio.get_running_loop().create_task(_close_quietly(client))
        except RuntimeError:  # no event loop: nothing was ever opened on it
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def retired(self) -> None:
        """Until the clients dropped so far are closed (tests; shutting down)."""
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def close(self) -> None:
        for client in self._clients.values():
            await _close_quietly(client)
        await self.retired()
        await self.http.aclose()


async def _close_quietly(client: AppleClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()
