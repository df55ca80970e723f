"""docs/api.md §2: bad bytes are refused with the envelope, never stored and never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.api import ADMIN, PublisherRef, assert_envelope, new_customer

NUL = "\u0000"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/publishers", {"name": f"Acme{NUL}TV"}, "name"),
        ("customers", {"email": f"a{NUL}@example.com"}, "email"),
        ("customers", {"email": "b@example.com", "externalId": f"x{NUL}"}, "externalId"),
        ("offers/S123456789_US", {"title": f"Pro{NUL}", "productIds": ["a.b"]}, "title"),
        ("offers/S123456789_US", {"title": "Pro", "productIds": [f"a{NUL}b"]}, "productIds"),
    ],
)
async def test_a_nul_in_any_string_of_a_body_is_req0001(
    client: httpx.AsyncClient, publisher: PublisherRef, path: str, body: object, field: str
) -> None:
    url = path if path.startswith("/") else f"/admin/publishers/{publisher.id}/{path}"
    method = client.post if "offers" not in path else client.put
    answer = await method(url, json=body, headers=ADMIN)
    problem = assert_envelope(answer, 400, "REQ0001")
    details = answer.json()["details"]
    assert any(d["field"].startswith(field) for d in details), problem


async def test_control_characters_in_a_path_are_refused_not_trimmed(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    for raw in ("%00", "%0A", "%0D", "%09"):
        poll = await client.get(f"/purchases/synchronizations/abc{raw}", headers=publisher.headers)
        assert_envelope(poll, 400, "REQ0003")
        # `123\n` must not become publisher 123 through the route's pattern and int()
        offers = await client.get(f"/admin/publishers/{publisher.id}{raw}/offers", headers=ADMIN)
        assert_envelope(offers, 400, "REQ0003")


async def test_a_nul_in_a_query_is_req0001(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    url = f"/admin/publishers/{publisher.id}/webhook-deliveries?topic=a%00b"
    assert_envelope(await client.get(url, headers=ADMIN), 400, "REQ0001")


@pytest.mark.parametrize("digits", ["\u0661\u0662\u0663", "\u0967\u0968", "12\uff13"])
async def test_a_transaction_id_takes_ascii_digits_only(
    client: httpx.AsyncClient, publisher: PublisherRef, digits: str
) -> None:
    customer = await new_customer(client, publisher)
    body = {"cleengCustomerId": customer, "transactionId": digits}
    answer = await client.post("/storekit2/purchases", json=body, headers=publisher.headers)
    assert_envelope(answer, 400, "REQ0001")


async def test_an_empty_credential_header_counts_as_absent(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    headers = {**publisher.headers, "X-Admin-Token": "", "Authorization": " "}
    answer = await client.get(f"/admin/publishers/{publisher.id}/offers", headers=headers)
    assert answer.status_code == 200, answer.text
    empty = await client.get(
        f"/admin/publishers/{publisher.id}/offers", headers={"X-Admin-Token": ""}
    )
    assert_envelope(empty, 401, "AUTH0001")


async def test_a_405_allows_every_method_the_path_serves(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    answer = await client.post(f"/admin/publishers/{publisher.id}/storekit2", headers=ADMIN)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}
