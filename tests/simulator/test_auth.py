"""Apple's bearer token: every flaw is a 401 with an empty body."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from appstoreserverlibrary.api_client import APIException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import MakeClient, SimApp, buy


def _other_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def _claims(app: SimApp, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": app.issuer_id,
        "bid": app.bundle_id,
        "aud": "appstoreconnect-v1",
        "exp": int(time.time()) + 300,
    }
    return {k: v for k, v in (claims | changes).items() if v is not None}


def _token(app: SimApp, key: str | None = None, kid: str | None = None, **changes: Any) -> str:
    return jwt.encode(
        _claims(app, **changes),
        key or app.private_key,
        algorithm="ES256",
        headers={"kid": kid or app.key_id},
    )


async def _status_with(
    sim: SimulatorServer, transaction_id: str, token: str, authorization: str | None = None
) -> httpx.Response:
    header = authorization if authorization is not None else f"Bearer {token}"
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        return await http.get(f"/inApps/v1/transactions/{transaction_id}", headers=headers)


async def test_a_token_signed_with_another_key_is_refused(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    with pytest.raises(APIException) as caught:
        await apple(app, private_key=_other_private_key()).get_transaction_info(
            bought["transactionId"]
        )
    assert (caught.value.http_status_code, caught.value.api_error) == (401, None)
    assert caught.value.raw_api_error is None


@pytest.mark.parametrize(
    "changes",
    [{}, {"aud": ["appstoreconnect-v1"]}, {"iat": int(time.time())}, {"nbf": int(time.time())}],
    ids=["apple", "audience-list", "with-iat", "with-nbf"],
)
async def test_a_well_formed_token_is_accepted(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, changes: dict[str, Any]
) -> None:
    bought = await buy(control, app)
    response = await _status_with(sim, bought["transactionId"], _token(app, **changes))
    assert response.status_code == 200


async def test_a_tampered_token_is_refused(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp
) -> None:
    bought = await buy(control, app)
    header, _, signature = _token(app).split(".")
    claims = json.dumps(_claims(app, exp=int(time.time()) + 3600)).encode()
    payload = base64.urlsafe_b64encode(claims).decode().rstrip("=")
    response = await _status_with(sim, bought["transactionId"], f"{header}.{payload}.{signature}")
    assert (response.status_code, response.content) == (401, b"")


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "appstoreconnect-v2"},
        {"aud": None},
        {"exp": int(time.time()) - 10},
        {"exp": None},
        {"iss": "another-issuer"},
        {"iss": None},
        {"bid": "com.example.unregistered"},
        {"bid": None},
        {"exp": "9999999999"},
        # A day ahead: the value is taken when the tests are collected, and a whole suite may run
        # for more than ten minutes before this test does.
        {"nbf": int(time.time()) + 86_400},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
async def test_a_flawed_claim_is_refused_with_an_empty_401(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, changes: dict[str, Any]
) -> None:
    bought = await buy(control, app)
    response = await _status_with(sim, bought["transactionId"], _token(app, **changes))
    assert (response.status_code, response.content) == (401, b"")


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer not-a-jwt", "Basic abc"])
async def test_a_missing_or_garbled_token_is_refused(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, authorization: str
) -> None:
    bought = await buy(control, app)
    response = await _status_with(sim, bought["transactionId"], "", authorization)
    assert (response.status_code, response.content) == (401, b"")


async def test_an_unknown_key_id_is_refused(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp
) -> None:
    bought = await buy(control, app)
    response = await _status_with(sim, bought["transactionId"], _token(app, kid="UNKNOWN123"))
    assert response.status_code == 401


async def test_another_algorithm_is_refused(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp
) -> None:
    bought = await buy(control, app)
    forged = jwt.encode(_claims(app), "a shared secret of at least 32 bytes!", algorithm="HS256")
    response = await _status_with(sim, bought["transactionId"], forged)
    assert response.status_code == 401


async def test_an_app_registered_with_its_own_public_key(
    sim: SimulatorServer, control: httpx.AsyncClient, apple: MakeClient
) -> None:
    private = _other_private_key()
    key = serialization.load_pem_private_key(private.encode(), None)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"bundleId": "com.example.ownkey", "keyId": "OWNKEY0001", "publicKey": public.decode()}
    response = await control.post("/sim/apps", json=body | {"issuerId": "issuer-1"})
    assert response.status_code == 201 and "privateKey" not in response.json()
    registered = SimApp(
        "com.example.ownkey", response.json()["appAppleId"], "issuer-1", "OWNKEY0001", private
    )
    bought = await buy(control, registered, "consumable")
    answer = await apple(registered).get_transaction_info(bought["transactionId"])
    assert answer.signedTransactionInfo
