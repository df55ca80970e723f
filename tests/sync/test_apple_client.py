"""Apple's client as the service wraps it: one bearer token reused while it has time to live."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import jwt
from appstoreserverlibrary.models.Environment import Environment

from app.apple.client import TOKEN_REUSE_SECONDS, Integration, _Client
from tests.test_admin import p256_pem


def _integration() -> Integration:
    return Integration(
        1, "com.token.test", None, "issuer", "KEY123", p256_pem(), "Sandbox", datetime.now(UTC)
    )


async def test_a_bearer_token_is_reused_for_four_of_its_five_minutes() -> None:
    moment = [1000.0]
    async with httpx.AsyncClient() as http:
        client = _Client(_integration(), Environment.SANDBOX, http, monotonic=lambda: moment[0])
        try:
            first = client._get_headers()["Authorization"]
            moment[0] += TOKEN_REUSE_SECONDS - 1
            assert client._get_headers()["Authorization"] == first
            moment[0] += 1
            renewed = client._get_headers()["Authorization"]
        finally:
            await client.close_own()
    assert renewed != first
    claims = jwt.decode(renewed.removeprefix("Bearer "), options={"verify_signature": False})
    # Signed just now: reused until its last minute, never past it.
    assert claims["exp"] - time.time() > TOKEN_REUSE_SECONDS + 55
