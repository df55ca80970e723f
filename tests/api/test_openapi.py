"""The OpenAPI document and /docs: credentials as security schemes, described models, integer
bounds as integers, and a docs page that needs no internet."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

PUBLIC = {"index", "health", "ready", "jwks", "receiveAppleNotification"}
CREDENTIAL_HEADERS = {"x-admin-token", "x-publisher-token", "authorization"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
    }


async def test_every_credential_is_a_security_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["publisherToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Publisher-Token",
        "description": schemes["publisherToken"]["description"],
    }
    assert schemes["adminToken"]["name"] == "X-Admin-Token"
    assert (schemes["customerJwt"]["scheme"], schemes["customerJwt"]["bearerFormat"]) == (
        "bearer",
        "JWT",
    )
    operations = _operations(document)
    assert operations["registerPurchase"]["security"] == [
        {"publisherToken": []},
        {"customerJwt": []},
    ]
    assert operations["createPublisher"]["security"] == [{"adminToken": []}]
    assert operations["putOffer"]["security"] == [{"adminToken": []}, {"publisherToken": []}]
    assert operations["getMyEntitlement"]["security"] == [{"customerJwt": []}]
    assert operations["listSubscriptions"]["security"] == [{"publisherToken": []}]
    assert operations["metrics"]["security"] == [{"metricsToken": []}, {}]
    for name, operation in operations.items():
        assert ("security" in operation) == (name not in PUBLIC), name
        headers = {
            p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
        }
        assert not headers & CREDENTIAL_HEADERS, (name, headers)


async def test_main_models_are_described_with_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in (
        "PurchaseRequest",
        "Accepted",
        "SynchronizationAnswer",
        "Entitlement",
        "SubscriptionAnswer",
        "StoreKit2Config",
        "OfferPut",
        "CustomerCreate",
        "EndpointIn",
    ):
        assert schemas[name].get("description"), name
        assert schemas[name].get("examples"), name
    customer = schemas["PurchaseRequest"]["properties"]["cleengCustomerId"]
    assert customer["description"]
    assert (customer["minimum"], customer["maximum"]) == (1, 2**63 - 1)
    assert type(customer["minimum"]) is int and type(customer["maximum"]) is int
    limit = next(
        p for p in _operations(document)["listSubscriptions"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 100 and type(limit["schema"]["maximum"]) is int


async def test_the_notifications_endpoint_documents_its_413(document: dict[str, Any]) -> None:
    responses = _operations(document)["receiveAppleNotification"]["responses"]
    assert "REQ0005" in responses["413"]["content"]["application/json"]["examples"]


async def test_docs_work_with_no_internet(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"https?://", page.text), "an asset from elsewhere"
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
    assert len(assets) == 3, assets
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 500, asset


async def test_the_simulators_docs_work_with_no_internet() -> None:
    from app.simulator.application import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"(src|href)=\"https?://", page.text)
        for asset in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text):
            assert (await client.get(asset)).status_code == 200, asset


async def test_docs_behind_a_prefix_find_their_files_under_it(app: FastAPI) -> None:
    """Mounted under a prefix by a proxy (ASGI's root_path), the page asks for its document and its
    files under that prefix."""
    transport = httpx.ASGITransport(app=app, root_path="/sks")
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        page = await client.get("/docs")
    assert page.status_code == 200
    assert "'/sks/openapi.json'" in page.text or '"/sks/openapi.json"' in page.text
    assert "/sks/static/swagger-ui/swagger-ui-bundle.js" in page.text
