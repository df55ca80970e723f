"""The one module that leans on the private parts of Apple's `app-store-server-library`.

The library is pinned to the minor version these parts were read from (pyproject.toml), and
`tests/apple/test_library.py` fails with a clear message if an upgrade changes any of them:

- `AsyncAppStoreServerAPIClient._base_url`: it has no base-URL setting; APPLE_API_BASE_URL sets it.
- `AsyncAppStoreServerAPIClient.http_client` and `_execute_request`: it makes its own httpx client
  per API client, with a 30 s timeout per call, and drops the headers of an error answer. Here every
  client shares one pooled httpx client with the service's timeouts, and a 429 raises `Throttled`
  with Apple's `Retry-After` before the library reads the answer.
- `BaseAppStoreServerAPIClient._generate_token`: it signs a new ES256 bearer token for every request
  (about 2 % of a sync's CPU); here one token serves for four of its five minutes.
- `SignedDataVerifier._chain_verifier` and `_ChainVerifier.verify_chain`: with online checks off it
  verifies the whole certificate chain of every payload (about 1.5 ms); here a verified chain is
  remembered (see `CachingChainVerifier`), and the payload's own signature is still checked.

Importing it also puts `app.jws_segments` in place: PyJWT's base64url check of each segment, done
in C rather than one character at a time (the same inputs refused, three times faster per payload).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, _ChainVerifier
from cryptography import x509

from app import jws_segments

LIBRARY_VERSION = "3.1"  # the minor version the parts above were read from
# The library's bearer tokens expire five minutes after they are signed (Apple allows up to 60).
TOKEN_REUSE_SECONDS = 240.0
THROTTLED = 429

jws_segments.install()


class Throttled(Exception):
    """Apple answered 429; `retry_after` is its `Retry-After` header as sent (Unix ms)."""

    def __init__(self, retry_after: str | None) -> None:
        super().__init__("Apple rate limit (429)")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Credentials:
    """An In-App Purchase key of one app: what the client signs its bearer tokens with."""

    private_key: str
    key_id: str
    issuer_id: str
    bundle_id: str


class AppleClient(AsyncAppStoreServerAPIClient):
    """Apple's client on a shared httpx client, with its timeouts, `Retry-After` kept, a bearer
    token reused while it has more than a minute to live, and an optional base URL."""

    def __init__(
        self,
        credentials: Credentials,
        environment: Environment,
        http: httpx.AsyncClient,
        base_url: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        c = credentials
        super().__init__(c.private_key.encode(), c.key_id, c.issuer_id, c.bundle_id, environment)
        self._own_http: httpx.AsyncClient = self.http_client
        self.http_client = http
        if base_url is not None:
            self._base_url = base_url
        self._monotonic = monotonic
        self._token: tuple[str, float] | None = None  # the token, and until when to reuse it

    def _generate_token(self) -> str:
        now = self._monotonic()
        if self._token is None or now >= self._token[1]:
            self._token = (str(super()._generate_token()), now + TOKEN_REUSE_SECONDS)
        return self._token[0]

    async def _execute_request(
        self,
        method: str,
        url: str,
        params: dict[str, Any],
        headers: dict[str, str],
        json: dict[str, Any] | None,
        data: bytes | None,
    ) -> httpx.Response:
        response = await self.http_client.request(
            method, url, params=params, headers=headers, json=json, content=data
        )
        if response.status_code == THROTTLED:
            raise Throttled(response.headers.get("retry-after"))
        return response

    async def close(self) -> None:
        """Close the httpx client the library made for itself (the shared one is not ours)."""
        await self._own_http.aclose()


CHAIN_CACHE_SECONDS = 15 * 60
CHAIN_CACHE_SIZE = 64


@dataclass(frozen=True)
class _Verified:
    public_key: str
    not_before: float
    not_after: float
    cached_until: float


def _validity(certificates: list[str]) -> tuple[float, float]:
    loaded = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in certificates]
    not_before = max(c.not_valid_before_utc.timestamp() for c in loaded)
    not_after = min(c.not_valid_after_utc.timestamp() for c in loaded)
    return not_before, not_after


class CachingChainVerifier(_ChainVerifier):
    """Keeps the public key of a chain that verified, for that exact chain, for 15 minutes, and
    only for payloads signed while every certificate of the chain was valid."""

    def __init__(self, root_certificates: list[bytes]) -> None:
        super().__init__(root_certificates)
        self._verified: dict[tuple[str, ...], _Verified] = {}

    def verify_chain(
        self, certificates: list[str], perform_online_checks: bool, effective_date: int
    ) -> str:
        key = tuple(certificates)
        hit = self._verified.get(key)
        fresh = hit is not None and hit.cached_until > time.monotonic()
        if fresh and hit and hit.not_before <= effective_date <= hit.not_after:
            return hit.public_key
        public_key: str = super().verify_chain(certificates, perform_online_checks, effective_date)
        self._remember(key, public_key, certificates)
        return public_key

    def _remember(self, key: tuple[str, ...], public_key: str, certificates: list[str]) -> None:
        if len(self._verified) >= CHAIN_CACHE_SIZE:
            self._verified.clear()
        not_before, not_after = _validity(certificates)
        until = time.monotonic() + CHAIN_CACHE_SECONDS
        self._verified[key] = _Verified(public_key, not_before, not_after, until)


def make_verifier(
    roots: list[bytes],
    online_checks: bool,
    environment: Environment,
    bundle_id: str,
    app_apple_id: int | None,
) -> SignedDataVerifier:
    """Apple's verifier for one app and environment, with verified chains remembered."""
    verifier = SignedDataVerifier(roots, online_checks, environment, bundle_id, app_apple_id)
    verifier._chain_verifier = CachingChainVerifier(roots)
    return verifier
