"""Apple's App Store Server API for each app of each publisher: its clients, its verifiers,
its environments."""

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

from app.activity.tally import Tally
from app.apple.budget import Budget
from app.apple.cache import VersionedLru
from app.apple.library import AppleClient, Credentials, make_verifier
from app.apple.verifier import load_root_certificates
from app.config import Settings
from app.security import Purpose, SecretBox, row_binding
from app.transport import AiohttpTransport, default_ssl_context, tcp_connector

APPLE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
APP_TABLE = "storekit2_apps"
KEY_PURPOSE: Purpose = "apple-private-key"


def key_binding(publisher_id: int, bundle_id: str) -> str:
    """What an app's sealed private key is bound to: its row of `storekit2_apps`."""
    return row_binding(APP_TABLE, publisher_id, bundle_id)


@dataclass(frozen=True)
class AppleApp:
    """One app of a publisher, as Apple knows it: bundle id, app id, the In-App Purchase key
    (decrypted; never logged) and the environments it is asked in."""

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
        return f"AppleApp(publisher_id={self.publisher_id}, bundle_id={self.bundle_id!r})"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.private_key, self.key_id, self.issuer_id, self.bundle_id)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], box: SecretBox) -> AppleApp:
        """From a `storekit2_apps` row (the columns of `FIELDS`)."""
        publisher_id, bundle_id = record["publisher_id"], record["bundle_id"]
        sealed = record["private_key_encrypted"]
        return cls(
            publisher_id=publisher_id,
            bundle_id=bundle_id,
            app_apple_id=record["app_apple_id"],
            issuer_id=record["issuer_id"],
            key_id=record["key_id"],
            private_key=box.open(
                sealed, purpose=KEY_PURPOSE, bound_to=key_binding(publisher_id, bundle_id)
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
    """One API client per app and environment, reused while the app stays as it was last changed;
    one verifier likewise; the calls' outcomes counted in `activity`. At most `cache_size` of
    each: the least recently used goes first, and a client dropped (or replaced after a change of
    its app) has its own HTTP pool closed."""

    def __init__(
        self, settings: Settings, budget: Budget, activity: Tally, cache_size: int = CACHED_APPS
    ) -> None:
        self.settings, self.budget, self.activity = settings, budget, activity
        self.roots = load_root_certificates(settings.apple_root_certificates)
        connector = tcp_connector(default_ssl_context(), limit=200)
        self.http = httpx.AsyncClient(
            transport=AiohttpTransport(connector), timeout=APPLE_TIMEOUT, trust_env=False
        )
        self._clients: VersionedLru[AppKey, AppleClient] = VersionedLru(cache_size, self._retire)
        self._verifiers: VersionedLru[AppKey, SignedDataVerifier] = VersionedLru(cache_size)
        self._closing: set[asyncio.Task[None]] = set()

    @staticmethod
    def _key(app: AppleApp, environment: Environment) -> AppKey:
        return (app.publisher_id, app.bundle_id, environment)

    def client(self, app: AppleApp, environment: Environment) -> AppleClient:
        def make() -> AppleClient:
            base_url = self.settings.apple_api_base_url
            return AppleClient(app.credentials, environment, self.http, base_url)

        return self._clients.get(self._key(app, environment), app.updated_at, make)

    def verifier(self, app: AppleApp, environment: Environment) -> SignedDataVerifier:
        def make() -> SignedDataVerifier:
            return make_verifier(
                self.roots,
                self.settings.apple_online_checks,
                environment,
                app.bundle_id,
                app.app_apple_id,
            )

        return self._verifiers.get(self._key(app, environment), app.updated_at, make)

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
