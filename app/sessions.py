"""The operator console's sessions: signed, expiring tokens for its cookie, and a limit on failed
sign-ins per client address.

A session is a small JSON object and an HMAC-SHA256 of it, under a key derived from SECRET_KEY for
this purpose alone (HKDF): anyone can read it, nobody without the key can make or alter one. It
never holds a credential: only a keyed fingerprint of the credential's hash, so that a session ends
when its credential does (a rotated admin token, a revoked publisher token). A new SECRET_KEY ends
every session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from app.security import derived_key, hash_token

SESSION_PURPOSE = "console session"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and opens session tokens: `<base64url(JSON)>.<base64url(HMAC-SHA256)>`."""

    def __init__(self, secret_key: str) -> None:
        self._key = derived_key(secret_key, SESSION_PURPOSE)

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def sign(self, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64(self._mac(body.encode()))}"

    def open(self, token: str, now: datetime) -> dict[str, Any] | None:
        """The claims of an authentic token whose `exp` (Unix seconds) is still ahead; else
        None, whatever was wrong with it."""
        body, _, mac = token.partition(".")
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(body.encode())):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(claims, dict):
            return None
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= now.timestamp():
            return None
        return claims

    def fingerprint(self, token_hash: str) -> str:
        """A credential's mark in a session: keyed, so it says nothing of the credential to
        whoever reads the cookie, and tells whether the session's credential is still valid."""
        return _b64(self._mac(b"credential:" + token_hash.encode())[:18])

    def credential(self, token: str) -> str:
        """The fingerprint of a credential given in clear."""
        return self.fingerprint(hash_token(token))


def client_key(address: str | None) -> str:
    """Whom a failed sign-in counts against: the address, or its /64 for IPv6 (one host
    commonly holds a whole /64)."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class SignInLimiter:
    """At most `limit` failed sign-ins per client in a sliding `window`, in this process's memory
    (each process counts its own; the bound is per process). A success clears the client's."""

    def __init__(
        self,
        limit: int = 10,
        window: timedelta = timedelta(minutes=15),
        max_clients: int = 10_000,
    ) -> None:
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str, now: datetime) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        failures = self._recent(client, now)
        if len(failures) < self.limit:
            return None
        return max(int((failures[0] + self.window - now).total_seconds()) + 1, 1)

    def failed(self, client: str, now: datetime) -> None:
        failures = self._recent(client, now)
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._forget_oldest(now)
        failures.append(now)
        self._failures[client] = failures

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _forget_oldest(self, now: datetime) -> None:
        for client in [c for c in self._failures if not self._recent(c, now)]:
            del self._failures[client]
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]
