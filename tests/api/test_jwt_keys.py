"""docs/api.md §7: customer JWTs name their issuer, say when they expired, and survive a key rotation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

import httpx
import jwt
import jwt.algorithms
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.main import create_app
from app.security import load_signing_key
from tests.helpers.api import (
    PublisherRef,
    assert_envelope,
    make_settings,
    new_customer,
    new_publisher,
)

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


def _public_pem(name: str) -> str:
    private = serialization.load_pem_private_key(_pem(name).encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _kid(name: str, data_dir: Path) -> str:
    return load_signing_key(_pem(name), data_dir).kid


def _settings(database_url: str, data_dir: Path, key: str, previous: str | None) -> Settings:
    return make_settings(
        database_url, data_dir, jwt_private_key=_pem(key), jwt_private_key_previous=previous
    )


@asynccontextmanager
async def _service(settings: Settings, clock: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


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


async def test_the_jwks_publishes_the_previous_key_beside_the_current_one(
    database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    settings = _settings(database_url, data_dir, "new", previous=_pem("old"))
    async with _service(settings, clock) as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [k["kid"] for k in keys] == [_kid("new", data_dir), _kid("old", data_dir)]
    assert all(k["alg"] == "RS256" and k["use"] == "sig" and "d" not in k for k in keys)


async def test_tokens_of_the_previous_key_stay_valid_until_they_expire(
    database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    async with _service(_settings(database_url, data_dir, "old", None), clock) as before:
        publisher = await new_publisher(before)
        old_token = await _issue(before, publisher)
    rotated = _settings(database_url, data_dir, "new", previous=_pem("old"))
    async with _service(rotated, clock) as after:
        assert (await after.get(ENTITLEMENT, headers=_bearer(old_token))).status_code == 200
        new_token = await _issue(after, publisher)
        assert jwt.get_unverified_header(new_token)["kid"] == _kid("new", data_dir)
        clock.advance(900 + 60)
        expired = await after.get(ENTITLEMENT, headers=_bearer(old_token))
        assert assert_envelope(expired, 401, "AUTH0002")["message"] == "Token expired"


async def test_once_the_previous_key_is_dropped_its_tokens_are_refused(
    database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    async with _service(_settings(database_url, data_dir, "old", None), clock) as before:
        publisher = await new_publisher(before)
        old_token = await _issue(before, publisher)
    async with _service(_settings(database_url, data_dir, "new", None), clock) as after:
        refused = await after.get(ENTITLEMENT, headers=_bearer(old_token))
        assert assert_envelope(refused, 401, "AUTH0002")["message"] == "Invalid credentials"


async def test_a_key_is_picked_by_kid_and_a_token_never_verifies_with_another(
    database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    settings = _settings(database_url, data_dir, "new", previous=_pem("old"))
    async with _service(settings, clock) as client:
        publisher = await new_publisher(client)
        claims = {"customerId": await new_customer(client, publisher), "publisherId": publisher.id}
        good = _sign(_pem("old"), _kid("old", data_dir), **claims)
        assert (await client.get(ENTITLEMENT, headers=_bearer(good))).status_code == 200
        for token in (
            _sign(_pem("old"), _kid("new", data_dir), **claims),
            _sign(_pem("new"), _kid("old", data_dir), **claims),
            _sign(_pem("old"), "unknown-kid", **claims),
        ):
            assert_envelope(await client.get(ENTITLEMENT, headers=_bearer(token)), 401, "AUTH0002")


async def test_the_previous_key_may_be_given_as_its_public_key(
    database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    settings = _settings(database_url, data_dir, "new", previous=_public_pem("old"))
    async with _service(settings, clock) as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [k["kid"] for k in keys] == [_kid("new", data_dir), _kid("old", data_dir)]


def test_a_previous_key_equal_to_the_current_one_is_published_once(data_dir: Path) -> None:
    key = load_signing_key(_pem("new"), data_dir, _pem("new"))
    assert [k["kid"] for k in key.jwks] == [key.kid]


@pytest.mark.parametrize("previous", ["not a pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_an_unreadable_previous_key_stops_the_start(data_dir: Path, previous: str) -> None:
    with pytest.raises(ValueError, match="JWT_PRIVATE_KEY_PREVIOUS") as caught:
        load_signing_key(_pem("new"), data_dir, previous)
    assert previous not in str(caught.value)


async def test_no_key_is_loaded_or_validated_per_request_with_a_previous_key(
    database_url: str, data_dir: Path, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A junk Bearer or a token of either key costs no key loading (about 27 ms each)."""
    settings = _settings(database_url, data_dir, "new", previous=_pem("old"))
    async with _service(settings, clock) as client:
        publisher = await new_publisher(client)
        claims = {"customerId": await new_customer(client, publisher), "publisherId": publisher.id}
        tokens = [_sign(_pem(n), _kid(n, data_dir), **claims) for n in ("old", "new")]
        loads = _count_key_loads(monkeypatch)
        for token in tokens:
            assert (await client.get(ENTITLEMENT, headers=_bearer(token))).status_code == 200
        junk = await client.get(ENTITLEMENT, headers=_bearer("junk.junk.junk"))
        assert_envelope(junk, 401, "AUTH0002")
        assert (await client.get("/.well-known/jwks.json")).status_code == 200
    assert loads == []


def _count_key_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loads: list[str] = []
    for module in (serialization, jwt.algorithms):
        for name in ("load_pem_private_key", "load_pem_public_key"):
            original = getattr(module, name)

            def counting(*args: object, _original: object = original, _name: str = name) -> object:
                loads.append(_name)
                return _original(*args)  # type: ignore[operator]

            monkeypatch.setattr(module, name, counting)
    return loads
