"""docs/api.md §7: provisioning publishers, the StoreKit 2 integration, offers, customers, tokens."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

from app.context import Context
from app.security import SecretBoxError, row_binding
from tests.helpers.api import ADMIN, PublisherRef, assert_envelope, new_customer
from tests.helpers.keys import p256_pem


def storekit2_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "bundleId": "com.acme.tv",
        "appAppleId": 1234567890,
        "issuerId": str(uuid.uuid4()),
        "keyId": "ABC123DEFG",
        "privateKey": p256_pem(),
        "environment": "Production",
    }
    body.update(overrides)
    return body


async def test_create_publisher(client: httpx.AsyncClient) -> None:
    answer = await client.post("/admin/publishers", json={"name": "Acme TV"}, headers=ADMIN)
    assert answer.status_code == 201
    body = answer.json()
    assert body["name"] == "Acme TV"
    assert 100_000_000 <= body["publisherId"] <= 999_999_999
    assert set(body) == {"publisherId", "name", "publisherToken"}


async def test_storekit2_integration_round_trip(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    url = f"/admin/publishers/{publisher.id}/storekit2"
    body = storekit2_body()
    answer = await client.put(url, json=body, headers=publisher.headers)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["active"] is True and shown["bundleId"] == "com.acme.tv"
    assert "privateKey" not in shown and "BEGIN" not in answer.text
    context: Context = app.state.context
    stored = await context.db.fetchval(
        "SELECT private_key_encrypted FROM storekit2_apps WHERE publisher_id = $1",
        publisher.id,
    )
    assert b"BEGIN" not in stored
    binding = row_binding("storekit2_apps", publisher.id, "com.acme.tv")
    opened = context.secrets.open(stored, purpose="apple-private-key", bound_to=binding)
    assert opened == body["privateKey"]
    other = row_binding("storekit2_apps", publisher.id, "com.acme.tv2")
    with pytest.raises(SecretBoxError):  # bound to its row: another app's cannot stand in for it
        context.secrets.open(stored, purpose="apple-private-key", bound_to=other)
    listed = (await client.get(url, headers=publisher.headers)).json()
    assert [a["keyId"] for a in listed["apps"]] == ["ABC123DEFG"]


async def test_storekit2_validation(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    url = f"/admin/publishers/{publisher.id}/storekit2"
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    cases = {
        "privateKey": [{"privateKey": "not a key"}, {"privateKey": rsa_pem}, {"privateKey": p384}],
        "bundleId": [{"bundleId": "no dots"}, {"bundleId": "bad/chars.x"}],
        "environment": [{"environment": "Staging"}],
        "keyId": [{"keyId": "short"}],
    }
    for field, bodies in cases.items():
        for override in bodies:
            answer = await client.put(
                url, json=storekit2_body(**override), headers=publisher.headers
            )
            body = assert_envelope(answer, 400, "REQ0001")
            assert field in str(body["details"]), (field, body)
    missing_app_id = storekit2_body(environment="Auto")
    del missing_app_id["appAppleId"]
    assert_envelope(
        await client.put(url, json=missing_app_id, headers=publisher.headers), 400, "REQ0001"
    )
    sandbox = storekit2_body(environment="Sandbox")
    del sandbox["appAppleId"]
    assert (await client.put(url, json=sandbox, headers=publisher.headers)).status_code == 200


async def test_storekit2_delete_deactivates(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    url = f"/admin/publishers/{publisher.id}/storekit2"
    assert_envelope(await client.delete(url, headers=publisher.headers), 404, "REQ0100")
    await client.put(url, json=storekit2_body(), headers=publisher.headers)
    assert (await client.delete(url, headers=publisher.headers)).status_code == 204
    assert (await client.get(url, headers=publisher.headers)).json() == {
        "active": False,
        "ownership": "transfer",
        "apps": [],
    }
    again = await client.put(url, json=storekit2_body(), headers=publisher.headers)
    assert again.json()["active"] is True


async def test_offers(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    base = f"/admin/publishers/{publisher.id}/offers"
    body = {"title": "Pro monthly", "productIds": ["com.acme.tv.pro.monthly"]}
    answer = await client.put(f"{base}/S123456789_US", json=body, headers=publisher.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "offerId": "S123456789_US",
        "title": "Pro monthly",
        "productIds": body["productIds"],
    }
    for bad in ("S023456789_US", "X123456789_US", "S123456789_us", "S12345678_US"):
        answer = await client.put(f"{base}/{bad}", json=body, headers=publisher.headers)
        assert_envelope(answer, 400, "REQ0003")
    taken = await client.put(f"{base}/S223456789_US", json=body, headers=publisher.headers)
    assert "already mapped" in str(assert_envelope(taken, 400, "REQ0001")["details"])
    moved = {"title": "Pro monthly", "productIds": ["com.acme.tv.pro.monthly.v2"]}
    assert (
        await client.put(f"{base}/S123456789_US", json=moved, headers=publisher.headers)
    ).status_code == 200
    assert (
        await client.put(f"{base}/S223456789_US", json=body, headers=publisher.headers)
    ).status_code == 200
    listed = (await client.get(base, headers=publisher.headers)).json()["items"]
    assert [o["offerId"] for o in listed] == ["S123456789_US", "S223456789_US"]


async def test_same_product_id_at_two_publishers(client: httpx.AsyncClient) -> None:
    from tests.helpers.api import new_publisher

    body = {"title": "Pro", "productIds": ["com.shared.product"]}
    for _ in range(2):
        publisher = await new_publisher(client)
        url = f"/admin/publishers/{publisher.id}/offers/P123456789_PL"
        assert (await client.put(url, json=body, headers=publisher.headers)).status_code == 200


async def test_concurrent_offers_cannot_share_a_product(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    base = f"/admin/publishers/{publisher.id}/offers"
    body = {"title": "Race", "productIds": ["com.acme.race"]}
    answers = await asyncio.gather(
        *(
            client.put(f"{base}/E{n}23456789_US", json=body, headers=publisher.headers)
            for n in range(1, 9)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [400] * 7


async def test_customers(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    url = f"/admin/publishers/{publisher.id}/customers"
    answer = await client.post(
        url, json={"email": "a@example.com", "externalId": "ext-1"}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    customer = answer.json()
    assert 100_000_000 <= customer["customerId"] <= 999_999_999
    assert customer["email"] == "a@example.com" and customer["externalId"] == "ext-1"
    again = await client.post(url, json={"email": "a@example.com"}, headers=ADMIN)
    assert_envelope(again, 400, "REQ0001")
    assert_envelope(await client.post(url, json={"email": "nope"}, headers=ADMIN), 400, "REQ0001")


async def test_tokens_only_for_own_customers(client: httpx.AsyncClient) -> None:
    from tests.helpers.api import new_publisher

    mine, theirs = await new_publisher(client), await new_publisher(client)
    their_customer = await new_customer(client, theirs)
    url = f"/admin/publishers/{mine.id}/customers/{their_customer}/tokens"
    assert_envelope(await client.post(url, headers=mine.headers), 404, "REQ0100")
    assert_envelope(await client.post(url, headers=ADMIN), 404, "REQ0100")


async def test_unknown_publisher_for_admin(client: httpx.AsyncClient) -> None:
    answer = await client.get("/admin/publishers/999999998/offers", headers=ADMIN)
    assert_envelope(answer, 404, "REQ0100")
