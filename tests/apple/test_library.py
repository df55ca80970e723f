"""Apple's library as the service leans on it (`app.apple.library`): its private parts are where
they were read from, and one bearer token is reused while it has time to live."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import jwt
from appstoreserverlibrary.models.Environment import Environment

from app.apple.gateway import AppleApp
from app.apple.library import TOKEN_REUSE_SECONDS, AppleClient
from tests.helpers.keys import p256_pem


def _app() -> AppleApp:
    return AppleApp(
        1, "com.token.test", None, "issuer", "KEY123", p256_pem(), "Sandbox", datetime.now(UTC)
    )


async def test_a_bearer_token_is_reused_for_four_of_its_five_minutes() -> None:
    moment = [1000.0]
    async with httpx.AsyncClient() as http:
        client = AppleClient(
            _app().credentials, Environment.SANDBOX, http, monotonic=lambda: moment[0]
        )
        try:
            first = client._get_headers()["Authorization"]
            moment[0] += TOKEN_REUSE_SECONDS - 1
            assert client._get_headers()["Authorization"] == first
            moment[0] += 1
            renewed = client._get_headers()["Authorization"]
        finally:
            await client.close()
    assert renewed != first
    claims = jwt.decode(renewed.removeprefix("Bearer "), options={"verify_signature": False})
    # Signed just now: reused until its last minute, never past it.
    assert claims["exp"] - time.time() > TOKEN_REUSE_SECONDS + 55


def test_the_private_parts_leaned_on_are_where_they_were_read_from() -> None:
    """An upgrade of `app-store-server-library` that moves any of these breaks the service in
    ways no other test may show: fail here, loudly, and read `app/apple/library.py` again."""
    import importlib.metadata
    import inspect

    from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
    from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, _ChainVerifier

    from app.apple.library import LIBRARY_VERSION

    version = importlib.metadata.version("app-store-server-library")
    assert version.startswith(LIBRARY_VERSION + "."), (
        f"app-store-server-library {version} is installed; app/apple/library.py was written "
        f"against {LIBRARY_VERSION}.x: read its private parts again before changing the pin"
    )
    client = AsyncAppStoreServerAPIClient(
        p256_pem().encode(), "KEY123", "issuer", "com.x.y", Environment.SANDBOX
    )
    for name in ("_base_url", "http_client"):
        assert hasattr(client, name), f"the library's client has no {name} any more"
    execute = inspect.signature(AsyncAppStoreServerAPIClient._execute_request)
    assert list(execute.parameters) == [
        "self",
        "method",
        "url",
        "params",
        "headers",
        "json",
        "data",
    ]
    assert list(inspect.signature(AsyncAppStoreServerAPIClient._generate_token).parameters) == [
        "self"
    ]
    verify = inspect.signature(_ChainVerifier.verify_chain)
    assert list(verify.parameters) == [
        "self",
        "certificates",
        "perform_online_checks",
        "effective_date",
    ]
    verifier = SignedDataVerifier([], False, Environment.SANDBOX, "com.x.y", None)
    assert isinstance(verifier._chain_verifier, _ChainVerifier)
