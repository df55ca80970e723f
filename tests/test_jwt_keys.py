"""SPEC §7: customer JWTs name their issuer, say when they expired, and survive a key rotation."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import httpx
import jwt
import jwt.algorithms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from app.clock import MovableClock
from app.context import Context
from app.security import load_signing_key
from tests.conftest import PublisherRef, new_customer
from tests.test_errors import assert_envelope

ISSUER = "storekit-sync"
ENTITLEMENT = "/entitlements/S123456789_US"  # any customer-only route


@cache
def _pem(name: str) -> str:
    """One RSA key per name for the whole run (generating one takes tens of ms)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _kid(name: str, data_dir: Path) -> str:
    return load_signing_key(_pem(name), data_dir).kid


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _issue(client: httpx.AsyncClient, publisher: PublisherRef) -> str:
    customer_id = await new_customer(client, publisher)
    answer = await client.post(
        f"/admin/publishers/{publisher.id}/customers/{customer_id}/tokens",
        headers=publisher.headers,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["jwt"])


def _sign(pem: str, kid: str, **claims: object) -> str:
    """A token with our claims, `claims` replacing them (None leaves one out)."""
    now = int(time.time())
    body = {"customerId": 1, "publisherId": 1, "iat": now, "exp": now + 600, "iss": ISSUER}
    given = {k: v for k, v in {**body, **claims}.items() if v is not None}
    return jwt.encode(given, pem, algorithm="RS256", headers={"kid": kid})


async def test_issued_tokens_name_the_service_as_issuer(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    token = await _issue(client, publisher)
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == ISSUER
    assert (await client.get(ENTITLEMENT, headers=_bearer(token))).status_code == 200


async def test_a_token_without_our_issuer_is_refused(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    context: Context = app.state.context
    pem, kid = context.signing_key.private_pem.decode(), context.signing_key.kid
    claims = {"customerId": await new_customer(client, publisher), "publisherId": publisher.id}
    assert (await client.get(ENTITLEMENT, headers=_bearer(_sign(pem, kid, **claims)))).is_success
    for iss in (None, "someone-else", ""):
        token = _sign(pem, kid, **claims, iss=iss)
        answer = await client.get(ENTITLEMENT, headers=_bearer(token))
        assert assert_envelope(answer, 401, "AUTH0002")["message"] == "Invalid credentials", iss


async def test_an_expired_token_says_so(
    client: httpx.AsyncClient, publisher: PublisherRef, clock: MovableClock
) -> None:
    token = await _issue(client, publisher)
    clock.advance(900 + 60)
    body = assert_envelope(await client.get(ENTITLEMENT, headers=_bearer(token)), 401, "AUTH0002")
    assert body["message"] == "Token expired"


async def test_only_an_authentic_token_learns_that_it_expired(
    client: httpx.AsyncClient, publisher: PublisherRef, data_dir: Path
) -> None:
    """A forged token is refused as invalid whatever its `exp` says."""
    past = int(time.time()) - 3600
    forged = _sign(_pem("stranger"), _kid("stranger", data_dir), exp=past)
    body = assert_envelope(await client.get(ENTITLEMENT, headers=_bearer(forged)), 401, "AUTH0002")
    assert body["message"] == "Invalid credentials"
