"""Apple's App Store Server API for each publisher's app: its clients, its verifiers, environments."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier

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


class AppleGateway:
    """One API client per integration and environment, reused; one verifier likewise."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.roots = load_root_certificates(settings.apple_root_certificates)
        self.http = httpx.AsyncClient(
            timeout=APPLE_TIMEOUT,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )
        self._clients: dict[tuple[int, datetime, Environment], AppleClient] = {}
        self._verifiers: dict[tuple[int, datetime, Environment], SignedDataVerifier] = {}

    def client(self, integration: Integration, environment: Environment) -> AppleClient:
        key = (integration.publisher_id, integration.updated_at, environment)
        if key not in self._clients:
            base_url = self.settings.apple_api_base_url
            self._clients[key] = AppleClient(
                integration.credentials, environment, self.http, base_url
            )
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
                await client.close()
        await self.http.aclose()
