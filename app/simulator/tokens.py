"""Opaque tokens (revisions, pagination tokens): a base64url JSON list, or ``None`` if garbled."""

from __future__ import annotations

import base64
import binascii
import json

from app.simulator.signing import b64url, compact_json

Part = int | str


def encode(*parts: Part) -> str:
    return b64url(compact_json(list(parts))).decode("ascii")


def decode(token: str, *kinds: type[int] | type[str]) -> list[Part] | None:
    """The token's parts if it has exactly parts of ``kinds``, in order."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts = json.loads(raw)
    except (ValueError, binascii.Error):
        return None
    if not isinstance(parts, list) or len(parts) != len(kinds):
        return None
    fits = all(type(p) is k for p, k in zip(parts, kinds, strict=True))
    return parts if fits else None
