"""docs/api.md §1 and §7: the admin token, publisher tokens, customer JWTs, and the ways they fail."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from tests.helpers.api import (
    ADMIN,
    PublisherRef,
    assert_envelope,
    new_customer,
    new_publisher,
    running,
)


async def _customer_jwt(client: httpx.AsyncClient, publisher: PublisherRef) -> tuple[int, str]:
    customer_id = await new_customer(client, publisher)
    answer = await client.post(
        f"/admin/publishers/{publisher.id}/customers/{customer_id}/tokens",
        headers=publisher.headers,
    )
    assert answer.status_code == 201, answer.text
    return customer_id, str(answer.json()["jwt"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], claims: dict[str, object], signature: bytes = b"") -> str:
    parts = [json.dumps(header).encode(), json.dumps(claims).encode()]
    return ".".join([*(_b64(p) for p in parts), _b64(signature)])


def _claims(publisher_id: int, customer_id: int, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "customerId": customer_id,
        "publisherId": publisher_id,
        "iat": now,
        "exp": now + 600,
        **extra,
    }


async def _protected(
    client: httpx.AsyncClient, publisher_id: int, headers: dict[str, str]
) -> httpx.Response:
    return await client.get(f"/admin/publishers/{publisher_id}/offers", headers=headers)


async def test_no_credential_is_auth0001(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    assert_envelope(await _protected(client, publisher.id, {}), 401, "AUTH0001")


async def test_wrong_tokens_are_auth0002(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    for headers in (
        {"X-Admin-Token": "wrong-admin-token-0123456789"},
        {"X-Publisher-Token": "skp_not-a-real-token"},
        {"X-Publisher-Token": publisher.token + "x"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
    ):
        assert_envelope(await _protected(client, publisher.id, headers), 401, "AUTH0002")


async def test_two_credentials_are_req0004(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    headers = {**publisher.headers, **ADMIN}
    assert_envelope(await _protected(client, publisher.id, headers), 400, "REQ0004")


async def test_publisher_token_only_opens_its_own_publisher(client: httpx.AsyncClient) -> None:
    mine, theirs = await new_publisher(client, "Mine"), await new_publisher(client, "Theirs")
    assert (await _protected(client, mine.id, mine.headers)).status_code == 200
    assert_envelope(await _protected(client, theirs.id, mine.headers), 403, "AUTH0003")
    answer = await client.post("/admin/publishers", json={"name": "x"}, headers=mine.headers)
    assert_envelope(answer, 403, "AUTH0003")


async def test_admin_api_is_off_without_admin_token(
    settings: Settings, clock: MovableClock
) -> None:
    off = settings.model_copy(update={"admin_token": None})
    async with running(off, clock) as (_, client):
        answer = await client.post("/admin/publishers", json={"name": "x"}, headers=ADMIN)
    assert_envelope(answer, 401, "AUTH0002")


async def test_token_is_shown_once_and_stored_hashed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    publisher = await new_publisher(client)
    assert publisher.token.startswith("skp_") and len(publisher.token) >= 43
    context: Context = app.state.context
    stored = await context.db.fetchval(
        "SELECT token_hash FROM publisher_tokens WHERE publisher_id = $1", publisher.id
    )
    assert publisher.token not in stored and len(stored) == 64


async def test_customer_jwt_is_rs256_with_cleeng_claims(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    customer_id, token = await _customer_jwt(client, publisher)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(key).key
    claims = jwt.decode(token, public, algorithms=["RS256"])
    assert claims["customerId"] == customer_id and claims["publisherId"] == publisher.id
    assert claims["exp"] - claims["iat"] == 900
    # a customer token is not a publisher's: it may not provision
    assert_envelope(await _protected(client, publisher.id, _bearer(token)), 403, "AUTH0003")


async def test_forged_customer_jwts_are_refused(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    customer_id, good = await _customer_jwt(client, publisher)
    context: Context = app.state.context
    claims = _claims(publisher.id, customer_id)
    kid = context.signing_key.kid
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, payload, signature = good.split(".")
    tampered_claims = _claims(publisher.id, customer_id + 1)
    forged = {
        "alg none": _forge({"alg": "none", "kid": kid}, claims),
        "HS256 keyed with the public key": _hs256_with_public_key(
            claims, context.signing_key.public_pem, kid
        ),
        "tampered claims": ".".join(
            [header, _b64(json.dumps(tampered_claims).encode()), signature]
        ),
        "tampered signature": ".".join([header, payload, signature[:-4] + "AAAA"]),
        "unknown key": jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid}),
        "unknown kid": jwt.encode(claims, other, algorithm="RS256", headers={"kid": "nope"}),
        "expired": jwt.encode(
            {**claims, "exp": int(time.time()) - 60},
            context.signing_key.private_pem,
            algorithm="RS256",
            headers={"kid": kid},
        ),
        "no exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"},
            context.signing_key.private_pem,
            algorithm="RS256",
            headers={"kid": kid},
        ),
    }
    for name, token in forged.items():
        answer = await client.get(
            f"/admin/publishers/{publisher.id}/offers", headers=_bearer(token)
        )
        assert answer.status_code == 401, name
        assert answer.json()["code"] == "AUTH0002", name


def _hs256_with_public_key(claims: dict[str, object], public_pem: bytes, kid: str) -> str:
    """The classic confusion attack: sign HS256 with the RS256 public key as the HMAC secret."""
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


async def test_customer_jwt_expires_on_the_service_clock(
    client: httpx.AsyncClient, publisher: PublisherRef, clock: MovableClock
) -> None:
    _, token = await _customer_jwt(client, publisher)
    me = await client.get("/.well-known/jwks.json", headers=_bearer(token))
    assert me.status_code == 200
    clock.advance(900 + 60)
    answer = await _protected(client, publisher.id, _bearer(token))
    assert_envelope(answer, 401, "AUTH0002")


async def test_jwt_signing_key_is_kept_in_data_dir(app: FastAPI) -> None:
    context: Context = app.state.context
    path = context.settings.data_dir / "jwt-signing-key.pem"
    assert path.read_bytes() == context.signing_key.private_pem
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)


async def test_no_key_is_loaded_or_validated_per_request(
    client: httpx.AsyncClient, publisher: PublisherRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading an RSA key validates it (about 27 ms of CPU): a junk Bearer must not buy that.

    Every loader the service or PyJWT could reach per request is counted; none may run."""
    import jwt.algorithms

    _, token = await _customer_jwt(client, publisher)
    loads: list[str] = []
    for module in (serialization, jwt.algorithms):
        for name in ("load_pem_private_key", "load_pem_public_key"):
            original = getattr(module, name)

            def counting(*args: object, _original: object = original, _name: str = name) -> object:
                loads.append(_name)
                return _original(*args)  # type: ignore[operator]

            monkeypatch.setattr(module, name, counting)
    junk = await _protected(client, publisher.id, _bearer("junk.junk.junk"))
    assert_envelope(junk, 401, "AUTH0002")
    shaped = jwt.encode(_claims(publisher.id, 1), "x" * 32, algorithm="HS256")
    assert_envelope(await _protected(client, publisher.id, _bearer(shaped)), 401, "AUTH0002")
    valid = await client.get("/.well-known/jwks.json", headers=_bearer(token))
    assert valid.status_code == 200
    issued = await client.post(
        f"/admin/publishers/{publisher.id}/customers/{await new_customer(client, publisher)}/tokens",
        headers=publisher.headers,
    )
    assert issued.status_code == 201
    entitlement = await client.get("/entitlements/S123456789_US", headers=_bearer(token))
    assert entitlement.status_code == 200
    assert loads == []
