"""docs/api.md §3: register, transfer and poll: fields, codes, Correlation-Id, isolation."""

from __future__ import annotations

import uuid

from app.jobs.worker import Worker
from tests.helpers.api import ADMIN, assert_envelope, new_customer
from tests.helpers.shop import Shop, open_shop


async def _jobs(shop: Shop) -> int:
    return int(await shop.context.db.fetchval("SELECT count(*) FROM jobs WHERE kind = 'sync'"))


async def test_accepted_answer_and_a_new_uuid(shop: Shop) -> None:
    bought = await shop.purchase()
    answer = await shop.register(
        shop.customers[0], bought["transactionId"], ipAddress="203.0.113.7"
    )
    assert answer.status_code == 202
    assert set(answer.json()) == {"synchronizationId"}
    uuid.UUID(answer.json()["synchronizationId"])


async def test_correlation_id_is_the_id_and_replays(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    customer, tid = shop.customers[0], bought["transactionId"]
    headers = {**shop.publisher.headers, "Correlation-Id": f"corr-{uuid.uuid4()}"}
    first = await shop.register(customer, tid, headers=headers)
    assert first.json() == {"synchronizationId": headers["Correlation-Id"]}
    jobs = await _jobs(shop)
    replay = await shop.register(customer, tid, headers=headers)
    assert replay.status_code == 202
    assert replay.json() == first.json()
    assert await _jobs(shop) == jobs, "a replay must start nothing"
    other_body = await shop.register(shop.customers[1], tid, headers=headers)
    assert_envelope(other_body, 400, "REQ0004")
    await worker.drain()
    polled = await shop.poll(headers["Correlation-Id"])
    assert polled["correlationId"] == headers["Correlation-Id"]
    after = await shop.register(customer, tid, headers=headers)
    assert after.json() == first.json(), "a finalized replay still answers the same id"


async def test_one_unfinalized_sync_per_transaction(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    customer, tid = shop.customers[0], bought["transactionId"]
    await shop.accepted(customer, tid)
    assert_envelope(await shop.register(customer, tid), 409, "SK2C0101")
    assert_envelope(await shop.register(shop.customers[1], tid), 409, "SK2C0101")
    await worker.drain()
    assert (await shop.register(customer, tid)).status_code == 202, "a re-sync after finalization"


async def test_body_validation(shop: Shop) -> None:
    cases = [
        {"cleengCustomerId": shop.customers[0], "transactionId": "12ab"},
        {"cleengCustomerId": shop.customers[0], "transactionId": "1" * 33},
        {"cleengCustomerId": shop.customers[0], "transactionId": ""},
        {"cleengCustomerId": str(shop.customers[0]), "transactionId": "123"},
        {"cleengCustomerId": shop.customers[0]},
        {"cleengCustomerId": shop.customers[0], "transactionId": "123", "ipAddress": "300.1.1.1"},
    ]
    for body in cases:
        answer = await shop.client.post(
            "/storekit2/purchases", json=body, headers=shop.publisher.headers
        )
        assert_envelope(answer, 400, "REQ0001")
        assert answer.json()["details"], body


async def test_unknown_customer_and_inactive_integration(shop: Shop) -> None:
    body = assert_envelope(await shop.register(999_999_997, "123"), 422, "SK2C0100")
    assert body["message"] == (
        "Unable to find customer 999999997: 999999997 is not a customer of this publisher"
    )
    assert body["details"] == [
        {"field": "cleengCustomerId", "problem": "999999997 is not a customer of this publisher"}
    ]
    other = await open_shop(shop.client, shop.sim, shop.context)
    stranger = other.customers[0]
    assert_envelope(await shop.register(stranger, "123"), 422, "SK2C0100")
    url = f"/admin/publishers/{shop.publisher.id}/storekit2"
    assert (await shop.client.delete(url, headers=ADMIN)).status_code == 204
    assert_envelope(await shop.register(shop.customers[0], "123"), 500, "SK2C0004")


async def test_customer_jwt_rules(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    me, other = shop.customers[:2]
    mine = await shop.customer_token(me)
    answer = await shop.register(me, bought["transactionId"], headers=mine)
    assert answer.status_code == 202
    sync_id = answer.json()["synchronizationId"]
    refused = assert_envelope(await shop.register(other, "123", headers=mine), 403, "AUTH0003")
    assert str(refused["message"]).startswith(
        f"Forbidden: a customer JWT registers for its own customer only, {me}"
    )
    entitlement = "/entitlements/S123456789_US"
    refused = assert_envelope(
        await shop.client.get(entitlement, headers=shop.publisher.headers), 403, "AUTH0003"
    )
    assert "this endpoint takes a customer JWT" in str(refused["message"])
    assert (await shop.poll(sync_id, headers=mine))["cleengCustomerId"] == me
    theirs = await shop.customer_token(other)
    answer = await shop.client.get(f"/purchases/synchronizations/{sync_id}", headers=theirs)
    assert_envelope(answer, 404, "REQ0100")


async def test_publishers_are_isolated(shop: Shop) -> None:
    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    other = await open_shop(shop.client, shop.sim, shop.context)
    answer = await shop.client.get(
        f"/purchases/synchronizations/{sync_id}", headers=other.publisher.headers
    )
    assert_envelope(answer, 404, "REQ0100")
    answer = await shop.client.get(
        f"/3.1/entitlements/customer_id/{shop.customers[0]}/offer_id/S123456789_US",
        headers=other.publisher.headers,
    )
    assert_envelope(answer, 404, "REQ0100")


async def test_poll_errors(shop: Shop) -> None:
    long_id = "x" * 257
    answer = await shop.client.get(
        f"/purchases/synchronizations/{long_id}", headers=shop.publisher.headers
    )
    assert_envelope(answer, 400, "REQ0003")
    answer = await shop.client.get(
        "/purchases/synchronizations/nope", headers=shop.publisher.headers
    )
    assert_envelope(answer, 404, "REQ0100")
    assert_envelope(await shop.client.get("/purchases/synchronizations/nope"), 401, "AUTH0001")
    answer = await shop.client.get("/purchases/synchronizations/nope", headers=ADMIN)
    assert_envelope(answer, 403, "AUTH0003")


async def test_transfer(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    first, second = shop.customers[:2]
    transfers = "/storekit2/purchases/transfers"
    assert_envelope(
        await shop.register(second, bought["transactionId"], path=transfers), 422, "SK2C0102"
    )
    await shop.accepted(first, bought["transactionId"])
    assert_envelope(
        await shop.register(second, bought["transactionId"], path=transfers), 422, "SK2C0102"
    )
    await worker.drain()
    moved = await shop.register(second, bought["transactionId"], path=transfers)
    assert moved.status_code == 202
    assert_envelope(
        await shop.register(first, bought["transactionId"], path=transfers), 409, "SK2C0103"
    )
    assert_envelope(await shop.register(first, bought["transactionId"]), 409, "SK2C0101")
    await worker.drain()
    assert (await shop.poll(moved.json()["synchronizationId"]))[
        "result"
    ] == "PURCHASE_OWNERSHIP_TRANSFERRED"
    same = await shop.register(second, bought["transactionId"], path=transfers)
    await worker.drain()
    assert (await shop.poll(same.json()["synchronizationId"]))[
        "result"
    ] == "PURCHASE_OWNERSHIP_UNCHANGED"
    third = await new_customer(shop.client, shop.publisher)
    renewed = await shop.act(bought["transactionId"], "renew")
    unseen = await shop.register(third, renewed["transactionId"], path=transfers)
    assert_envelope(unseen, 422, "SK2C0102")  # a transaction this service has not synchronized
    await shop.accepted(second, renewed["transactionId"])
    await worker.drain()
    by_renewal = await shop.register(third, renewed["transactionId"], path=transfers)
    assert by_renewal.status_code == 202, "a synchronized renewal names the purchase too"


async def test_a_replay_answers_even_after_the_integration_is_off(shop: Shop) -> None:
    bought = await shop.purchase()
    headers = {**shop.publisher.headers, "Correlation-Id": f"corr-{uuid.uuid4()}"}
    first = await shop.register(shop.customers[0], bought["transactionId"], headers=headers)
    assert first.status_code == 202
    url = f"/admin/publishers/{shop.publisher.id}/storekit2"
    assert (await shop.client.delete(url, headers=ADMIN)).status_code == 204
    replay = await shop.register(shop.customers[0], bought["transactionId"], headers=headers)
    assert replay.status_code == 202, "what was accepted stays accepted"
    assert replay.json() == first.json()
    assert_envelope(await shop.register(shop.customers[0], "123"), 500, "SK2C0004")


async def test_a_correlation_id_with_spaces_is_the_id(shop: Shop) -> None:
    bought = await shop.purchase()
    correlation = f"order {uuid.uuid4().hex[:8]} / try 1"
    headers = {**shop.publisher.headers, "Correlation-Id": correlation}
    answer = await shop.register(shop.customers[0], bought["transactionId"], headers=headers)
    assert answer.json() == {"synchronizationId": correlation}
    from urllib.parse import quote

    polled = await shop.poll(quote(correlation, safe=""))
    assert polled["correlationId"] == correlation
