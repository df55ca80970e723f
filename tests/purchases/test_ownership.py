"""docs/api.md §3's ownership policy: under `appAccountToken` a purchase that carries a token is its
customer's alone, and one without a token cannot be taken from its owner by a customer token;
under `transfer` (the default) a purchase moves to whoever registers it, as it always did."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt

from app.jobs.worker import Worker
from tests.helpers.api import ADMIN
from tests.helpers.shop import MONTHLY_OFFER, Shop

OWNED = "PURCHASE_OWNED_BY_ANOTHER_CUSTOMER"
TRANSFERS = "/storekit2/purchases/transfers"


async def _synced(
    shop: Shop,
    worker: Worker,
    customer: int,
    transaction_id: str,
    headers: dict[str, str] | None = None,
    path: str = "/storekit2/purchases",
) -> dict[str, Any]:
    answer = await shop.register(customer, transaction_id, headers=headers, path=path)
    assert answer.status_code == 202, answer.text
    assert await worker.drain() == 1
    return await shop.poll(answer.json()["synchronizationId"])


async def _access(shop: Shop, customer: int) -> bool:
    return bool((await shop.entitlement(customer, MONTHLY_OFFER))["accessGranted"])


async def test_every_customer_has_a_stable_app_account_token(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    url = f"/admin/publishers/{shop.publisher.id}/customers"
    made = await client.post(url, json={"email": "new@example.com"}, headers=ADMIN)
    token = made.json()["appAccountToken"]
    assert uuid.UUID(token).version == 4
    shown = await client.get(f"{url}/{made.json()['customerId']}", headers=ADMIN)
    assert shown.json()["appAccountToken"] == token
    assert set(shown.json()) == {
        "customerId",
        "email",
        "externalId",
        "appAccountToken",
        "createdAt",
    }
    tokens = {await shop.app_account_token(c) for c in shop.customers}
    assert len(tokens) == len(shop.customers), "each customer its own"
    bearer = (await shop.customer_token(shop.customers[0]))["Authorization"].split()[1]
    claims = jwt.decode(bearer, options={"verify_signature": False})
    assert claims["appAccountToken"] == await shop.app_account_token(shop.customers[0])


async def test_the_policy_is_the_publishers_and_transfer_by_default(shop: Shop) -> None:
    url = f"/admin/publishers/{shop.publisher.id}/storekit2"
    assert (await shop.client.get(url, headers=ADMIN)).json()["ownership"] == "transfer"
    assert (await shop.set_ownership("appAccountToken"))["ownership"] == "appAccountToken"
    again = await shop.client.put(url, json=shop.bodies[shop.bundle_id], headers=ADMIN)
    assert again.json()["ownership"] == "appAccountToken", "left out, it stays"
    bad = await shop.client.put(
        url, json={**shop.bodies[shop.bundle_id], "ownership": "finders-keepers"}, headers=ADMIN
    )
    assert bad.status_code == 400 and "ownership" in bad.text


async def test_a_purchase_with_a_token_is_its_customers_alone(shop: Shop, worker: Worker) -> None:
    await shop.set_ownership("appAccountToken")
    owner, other = shop.customers[:2]
    bought = await shop.purchase(appAccountToken=await shop.app_account_token(owner))
    tid = bought["transactionId"]
    # Registered for someone else first (even by the publisher): not granted, nothing made.
    refused = await _synced(shop, worker, other, tid)
    assert (refused["result"], refused["accessGranted"]) == (OWNED, False)
    assert "offerId" not in refused
    assert (await shop.subscriptions())["total"] == 0
    assert [t for t, _ in await shop.events(refused["synchronizationId"])] == [
        "inappPurchaseValidationFailed",
        "inappPurchaseSyncResult",
    ]
    failed = (await shop.events(refused["synchronizationId"]))[0][1]
    assert (failed["reason"], failed["customerId"]) == (OWNED, other)
    assert (await _synced(shop, worker, owner, tid))["result"] == "SUBSCRIPTION_CREATED"
    # Then nobody else takes it: not another customer's token, not the publisher, not a transfer.
    theirs = await shop.customer_token(other)
    for headers, path in ((theirs, "/storekit2/purchases"), (None, TRANSFERS), (theirs, TRANSFERS)):
        polled = await _synced(shop, worker, other, tid, headers, path)
        assert (polled["result"], polled["accessGranted"]) == (OWNED, False), (headers, path)
    assert (await _access(shop, owner), await _access(shop, other)) == (True, False)
    mine = await _synced(shop, worker, owner, tid, await shop.customer_token(owner))
    assert mine["result"] == "PURCHASE_OWNERSHIP_UNCHANGED"


async def test_a_token_of_no_customer_is_granted_to_no_one(shop: Shop, worker: Worker) -> None:
    await shop.set_ownership("appAccountToken")
    bought = await shop.purchase(appAccountToken=str(uuid.uuid4()))
    polled = await _synced(shop, worker, shop.customers[0], bought["transactionId"])
    assert (polled["result"], polled["accessGranted"]) == (OWNED, False)


async def test_a_tokenless_purchase_stays_with_its_owner_against_a_customer_token(
    shop: Shop, worker: Worker
) -> None:
    await shop.set_ownership("appAccountToken")
    owner, other = shop.customers[:2]
    tid = (await shop.purchase())["transactionId"]
    first = await _synced(shop, worker, owner, tid, await shop.customer_token(owner))
    assert first["result"] == "SUBSCRIPTION_CREATED", "nobody had it: its first customer may"
    theirs = await shop.customer_token(other)
    for path in ("/storekit2/purchases", TRANSFERS):
        taken = await _synced(shop, worker, other, tid, theirs, path)
        assert (taken["result"], taken["accessGranted"]) == (OWNED, False), path
    assert (await _access(shop, owner), await _access(shop, other)) == (True, False)
    # The publisher may move it, as under `transfer`.
    moved = await _synced(shop, worker, other, tid)
    assert moved["result"] == "PURCHASE_OWNERSHIP_TRANSFERRED"
    assert (await _access(shop, owner), await _access(shop, other)) == (False, True)


async def test_under_transfer_a_token_changes_nothing(shop: Shop, worker: Worker) -> None:
    owner, other = shop.customers[:2]
    bought = await shop.purchase(appAccountToken=await shop.app_account_token(owner))
    tid = bought["transactionId"]
    assert (await _synced(shop, worker, owner, tid))["result"] == "SUBSCRIPTION_CREATED"
    taken = await _synced(shop, worker, other, tid, await shop.customer_token(other))
    assert taken["result"] == "PURCHASE_OWNERSHIP_TRANSFERRED"
