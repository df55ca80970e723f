"""Verifying Apple's signed data with Apple's own `SignedDataVerifier`, with verified chains cached.

With online checks off, Apple's library verifies the whole certificate chain on every payload
(about 1.5 ms) although the chain rarely changes. The cache below keeps the public key of a chain
that verified, for that exact chain, for 15 minutes, and only for payloads signed while every
certificate of the chain was valid; the payload's own ES256 signature is still checked every time.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, _ChainVerifier
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

CACHE_SECONDS = 15 * 60
CACHE_SIZE = 64


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
        if len(self._verified) >= CACHE_SIZE:
            self._verified.clear()
        not_before, not_after = _validity(certificates)
        until = time.monotonic() + CACHE_SECONDS
        self._verified[key] = _Verified(public_key, not_before, not_after, until)


def load_root_certificates(paths: tuple[Path, ...]) -> list[bytes]:
    """DER bytes of each configured root certificate, given as DER or PEM files."""
    roots = []
    for path in paths:
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        roots.append(data)
    return roots


def make_verifier(
    roots: list[bytes],
    online_checks: bool,
    environment: Environment,
    bundle_id: str,
    app_apple_id: int | None,
) -> SignedDataVerifier:
    verifier = SignedDataVerifier(roots, online_checks, environment, bundle_id, app_apple_id)
    verifier._chain_verifier = CachingChainVerifier(roots)
    return verifier


def millis_to_datetime(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)
