"""Trusted roots for Apple's signed data, and Apple's millisecond timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def load_root_certificates(paths: tuple[Path, ...]) -> list[bytes]:
    """DER bytes of each configured root certificate, given as DER or PEM files."""
    roots = []
    for path in paths:
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        roots.append(data)
    return roots


def millis_to_datetime(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)
