"""docs/api.md §7: a publisher's apps, `PUT/DELETE …/storekit2/apps/{bundleId}`, and `…/storekit2` keeping
its meaning for a one-app publisher."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.helpers.api import ADMIN, PublisherRef, assert_envelope, new_customer
from tests.helpers.keys import p256_pem

APP_FIELDS = {"bundleId", "appAppleId", "issuerId", "keyId", "environment", "createdAt"}


def app_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "appAppleId": 1234567890,
        "issuerId": str(uuid.uuid4()),
        "keyId": "ABC123DEFG",
        "privateKey": p256_pem(),
        "environment": "Production",
    }
    body.update(overrides)
    return body


async def _get(client: httpx.AsyncClient, publisher: PublisherRef) -> dict[str, Any]:
    answer = await client.get(
        f"/admin/publishers/{publisher.id}/storekit2", headers=publisher.headers
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_apps_are_added_listed_and_replaced(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    base = f"/admin/publishers/{publisher.id}/storekit2"
    assert await _get(client, publisher) == {"active": False, "ownership": "transfer", "apps": []}
    first = await client.put(base, json=app_body(bundleId="com.acme.tv"), headers=ADMIN)
    assert first.status_code == 200, first.text
    assert first.json()["active"] is True and "privateKey" not in first.json()
    added = await client.put(
        f"{base}/apps/com.acme.tv.appletv", json=app_body(keyId="TVKEY12345"), headers=ADMIN
    )
    assert added.status_code == 200, added.text
    assert (added.json()["bundleId"], added.json()["keyId"]) == (
        "com.acme.tv.appletv",
        "TVKEY12345",
    )
    listed = await _get(client, publisher)
    assert listed["active"] is True
    assert [a["bundleId"] for a in listed["apps"]] == ["com.acme.tv", "com.acme.tv.appletv"]
    assert all(set(a) == APP_FIELDS for a in listed["apps"]), "never a private key"
    # PUT …/storekit2 replaces the app of its bundleId, and only that one.
    replaced = await client.put(
        base, json=app_body(bundleId="com.acme.tv", keyId="NEWKEY1234"), headers=ADMIN
    )
    assert replaced.json()["createdAt"] == first.json()["createdAt"]
    assert replaced.json()["updatedAt"] > first.json()["updatedAt"]
    keys = {a["bundleId"]: a["keyId"] for a in (await _get(client, publisher))["apps"]}
    assert keys == {"com.acme.tv": "NEWKEY1234", "com.acme.tv.appletv": "TVKEY12345"}


async def test_an_app_body_names_the_paths_bundle_or_none(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    url = f"/admin/publishers/{publisher.id}/storekit2/apps/com.acme.tv"
    same = await client.put(url, json=app_body(bundleId="com.acme.tv"), headers=ADMIN)
    assert same.status_code == 200, same.text
    other = await client.put(url, json=app_body(bundleId="com.acme.radio"), headers=ADMIN)
    body = assert_envelope(other, 400, "REQ0001")
    assert body["details"] == [
        {"field": "bundleId", "problem": "must be the path's bundleId 'com.acme.tv', or left out"}
    ]
    bad_path = f"/admin/publishers/{publisher.id}/storekit2/apps/no-dots"
    assert_envelope(await client.put(bad_path, json=app_body(), headers=ADMIN), 400, "REQ0003")
    missing = await client.put(url, json=app_body(keyId="short"), headers=ADMIN)
    assert "keyId" in str(assert_envelope(missing, 400, "REQ0001")["details"])


async def test_removing_apps(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    base = f"/admin/publishers/{publisher.id}/storekit2"
    for bundle in ("com.acme.tv", "com.acme.kids"):
        assert (
            await client.put(f"{base}/apps/{bundle}", json=app_body(), headers=ADMIN)
        ).is_success
    customer = await new_customer(client, publisher)
    register = {"cleengCustomerId": customer, "transactionId": "123"}
    unknown = await client.delete(f"{base}/apps/com.acme.radio", headers=ADMIN)
    body = assert_envelope(unknown, 404, "REQ0100")
    assert body["details"] == [
        {"field": "bundleId", "problem": "com.acme.radio is not an app of this publisher"}
    ]
    assert (await client.delete(f"{base}/apps/com.acme.kids", headers=ADMIN)).status_code == 204
    assert [a["bundleId"] for a in (await _get(client, publisher))["apps"]] == ["com.acme.tv"]
    assert (await _get(client, publisher))["active"] is True
    assert (await client.delete(f"{base}/apps/com.acme.tv", headers=ADMIN)).status_code == 204
    assert await _get(client, publisher) == {
        "active": False,
        "ownership": "transfer",
        "apps": [],
    }, "the last one: off"
    answer = await client.post("/storekit2/purchases", json=register, headers=publisher.headers)
    assert_envelope(answer, 500, "SK2C0004")
    await client.put(f"{base}/apps/com.acme.tv", json=app_body(), headers=ADMIN)
    assert (await _get(client, publisher))["active"] is True, "an app switches it on again"


async def test_deleting_the_integration_removes_every_app(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    base = f"/admin/publishers/{publisher.id}/storekit2"
    missing = await client.delete(base, headers=ADMIN)
    assert assert_envelope(missing, 404, "REQ0100")["details"] == [
        {"field": "publisherId", "problem": "this publisher has no StoreKit 2 integration"}
    ]
    for bundle in ("com.acme.tv", "com.acme.kids"):
        assert (
            await client.put(f"{base}/apps/{bundle}", json=app_body(), headers=ADMIN)
        ).is_success
    assert (await client.delete(base, headers=publisher.headers)).status_code == 204
    assert await _get(client, publisher) == {"active": False, "ownership": "transfer", "apps": []}


async def test_apps_are_the_publishers_own(client: httpx.AsyncClient) -> None:
    from tests.helpers.api import new_publisher

    mine, theirs = await new_publisher(client), await new_publisher(client)
    url = f"/admin/publishers/{theirs.id}/storekit2/apps/com.acme.tv"
    assert_envelope(await client.put(url, json=app_body(), headers=mine.headers), 403, "AUTH0003")
    assert_envelope(await client.delete(url, headers=mine.headers), 403, "AUTH0003")
    gone = "/admin/publishers/999999998/storekit2/apps/com.acme.tv"
    assert_envelope(await client.put(gone, json=app_body(), headers=ADMIN), 404, "REQ0100")


async def test_product_ids_stay_unique_across_a_publishers_apps(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    base = f"/admin/publishers/{publisher.id}"
    for bundle in ("com.acme.tv", "com.acme.tv.appletv"):
        await client.put(f"{base}/storekit2/apps/{bundle}", json=app_body(), headers=ADMIN)
    both = {"title": "Pro", "productIds": ["com.acme.tv.pro", "com.acme.tv.appletv.pro"]}
    assert (await client.put(f"{base}/offers/S123456789_US", json=both, headers=ADMIN)).is_success
    again = {"title": "Pro TV", "productIds": ["com.acme.tv.appletv.pro"]}
    taken = await client.put(f"{base}/offers/S223456789_US", json=again, headers=ADMIN)
    assert "already mapped" in str(assert_envelope(taken, 400, "REQ0001")["details"])
