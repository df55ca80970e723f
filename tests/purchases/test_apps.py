"""A publisher with several apps: each purchase synchronized with its own app's credentials and
verifier, with or without `bundleId`, in a predictable order of asking, and the calls it costs
(counted where the simulator answers them)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.config import Settings
from app.jobs.worker import Worker
from tests.helpers.api import ADMIN, assert_envelope
from tests.helpers.counting import CallCounter
from tests.helpers.keys import p256_pem
from tests.helpers.shop import MONTHLY_OFFER, Shop, add_app, open_shop

TRANSACTIONS = "/inApps/v1/transactions/"
STATUSES = "/inApps/v1/subscriptions/"


@pytest.fixture
def settings(counted_settings: Settings) -> Settings:
    return counted_settings


def asked(calls: CallCounter) -> list[tuple[str | None, str, int]]:
    """The calls since the last look: (app, what, Apple's answer)."""
    return [
        (c.bundle_id, "status" if STATUSES in c.path else "transaction", c.status)
        for c in calls.take()
    ]


async def _synced(
    shop: Shop, worker: Worker, transaction_id: str, **extra: object
) -> dict[str, Any]:
    sync_id = await shop.accepted(shop.customers[0], transaction_id, **extra)
    assert await worker.drain() == 1
    return await shop.poll(sync_id)


async def _stored_app(shop: Shop, sync_id: str) -> tuple[str | None, str | None]:
    """The app the sync, and the subscription it granted, were recorded with."""
    row = await shop.context.db.fetchrow(
        "SELECT y.bundle_id AS synced, s.bundle_id AS subscribed FROM synchronizations AS y"
        " LEFT JOIN subscriptions AS s ON s.id = y.subscription_id"
        " WHERE y.publisher_id = $1 AND y.id = $2",
        shop.publisher.id,
        sync_id,
    )
    assert row is not None
    return row["synced"], row["subscribed"]


async def test_each_apps_purchase_syncs_without_naming_its_app(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    first, tv = shop.bundle_id, await add_app(shop)
    for app, expected in (
        (first, [(first, "status", 200)]),
        (tv, [(first, "status", 404), (tv, "status", 200)]),
    ):
        bought = await shop.purchase(app=app)
        polled = await _synced(shop, worker, bought["transactionId"])
        assert (polled["result"], polled["offerId"]) == ("SUBSCRIPTION_CREATED", MONTHLY_OFFER)
        assert asked(apple_calls) == expected, app
        assert await _stored_app(shop, polled["synchronizationId"]) == (app, app)


async def test_a_named_app_is_the_only_one_asked(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    first, tv = shop.bundle_id, await add_app(shop)
    bought = await shop.purchase(app=tv)
    polled = await _synced(shop, worker, bought["transactionId"], bundleId=tv)
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert asked(apple_calls) == [(tv, "status", 200)]
    other = await shop.purchase(app=tv)
    polled = await _synced(shop, worker, other["transactionId"], bundleId=first)
    assert (polled["result"], polled["accessGranted"]) == ("TRANSACTION_ID_NOT_FOUND", False)
    assert asked(apple_calls) == [(first, "status", 404)]


async def test_a_bundle_id_the_publisher_lacks_is_refused(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase()
    unknown = await shop.register(shop.customers[0], bought["transactionId"], bundleId="com.x.y")
    body = assert_envelope(unknown, 400, "REQ0001")
    assert body["details"] == [
        {"field": "bundleId", "problem": "com.x.y is not an app of this publisher"}
    ]
    malformed = await shop.register(shop.customers[0], bought["transactionId"], bundleId="x")
    assert "'field': 'bundleId'" in str(assert_envelope(malformed, 400, "REQ0001")["details"])
    assert await worker.drain() == 0, "nothing was accepted"


async def test_a_replay_must_name_the_same_app(shop: Shop) -> None:
    tv = await add_app(shop)
    bought = await shop.purchase(app=tv)
    headers = {**shop.publisher.headers, "Correlation-Id": f"corr-{uuid.uuid4()}"}
    customer, tid = shop.customers[0], bought["transactionId"]
    first = await shop.register(customer, tid, headers=headers, bundleId=tv)
    assert first.status_code == 202
    assert (await shop.register(customer, tid, headers=headers, bundleId=tv)).json() == first.json()
    assert_envelope(await shop.register(customer, tid, headers=headers), 400, "REQ0004")
    other = await shop.register(customer, tid, headers=headers, bundleId=shop.bundle_id)
    assert_envelope(other, 400, "REQ0004")


async def test_three_apps_cost_one_call_per_app_before_the_one_that_knows(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    """The figure: a register without bundleId, its purchase in the third of three Sandbox apps,
    costs 4 calls (one 4040010 from each app before it, then its transaction and statuses).
    Once the purchase is known, a re-sync and a transfer go straight to its app: 2 calls."""
    first, second, third = shop.bundle_id, await add_app(shop), await add_app(shop)
    bought = await shop.purchase(app=third)
    polled = await _synced(shop, worker, bought["transactionId"])
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert asked(apple_calls) == [
        (first, "status", 404),
        (second, "status", 404),
        (third, "status", 200),
    ]
    again = await _synced(shop, worker, bought["transactionId"])
    assert again["result"] == "PURCHASE_OWNERSHIP_UNCHANGED"
    assert asked(apple_calls) == [(third, "status", 200)]
    transfer = "/storekit2/purchases/transfers"
    moved = await shop.register(shop.customers[1], bought["transactionId"], path=transfer)
    assert moved.status_code == 202, moved.text
    assert await worker.drain() == 1
    assert (await shop.poll(moved.json()["synchronizationId"]))["result"] == (
        "PURCHASE_OWNERSHIP_TRANSFERRED"
    )
    assert asked(apple_calls) == [(third, "status", 200)]


async def test_auto_apps_ask_both_environments_in_turn(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    """`Auto` apps: Production, then Sandbox, for each app before the one that knows it (6 calls
    for a purchase of the third; the simulator serves both environments on one base URL, so the
    third app's Production call finds it)."""
    auto = await open_shop(shop.client, shop.sim, shop.context, "Auto")
    second, third = await add_app(auto, "Auto"), await add_app(auto, "Auto")
    bought = await auto.purchase(app=third, environment="Sandbox")
    polled = await _synced(auto, worker, bought["transactionId"])
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert asked(apple_calls) == [
        (auto.bundle_id, "status", 404),
        (auto.bundle_id, "status", 404),
        (second, "status", 404),
        (second, "status", 404),
        (third, "status", 200),
    ]


async def test_an_app_whose_key_apple_refuses_is_skipped(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    first = shop.bundle_id
    refused = await add_app(shop, privateKey=p256_pem())  # not the key Apple knows for it
    tv = await add_app(shop)
    bought = await shop.purchase(app=tv)
    polled = await _synced(shop, worker, bought["transactionId"])
    assert polled["result"] == "SUBSCRIPTION_CREATED"
    assert asked(apple_calls) == [
        (first, "status", 404),
        (refused, "status", 401),
        (tv, "status", 200),
    ]
    lost = await shop.purchase(app=refused)
    polled = await _synced(shop, worker, lost["transactionId"])
    assert polled["result"] == "TRANSACTION_ID_NOT_FOUND"
    reason = await _last_error(shop, polled["synchronizationId"])
    assert reason == f"not found in {first}, {tv}; Apple refused the credentials of {refused}"


async def test_every_app_refused_is_apple_unavailable(shop: Shop, worker: Worker) -> None:
    url = f"/admin/publishers/{shop.publisher.id}/storekit2/apps/{shop.bundle_id}"
    answer = await shop.client.get(
        f"/admin/publishers/{shop.publisher.id}/storekit2", headers=ADMIN
    )
    app = {k: v for k, v in answer.json()["apps"][0].items() if k not in ("createdAt", "bundleId")}
    put = await shop.client.put(url, json={**app, "privateKey": p256_pem()}, headers=ADMIN)
    assert put.status_code == 200, put.text
    bought = await shop.purchase()
    polled = await _synced(shop, worker, bought["transactionId"])
    assert (polled["result"], polled["accessGranted"]) == ("APPLE_UNAVAILABLE", False)
    reason = await _last_error(shop, polled["synchronizationId"])
    assert reason == f"Apple refused the credentials of {shop.bundle_id}"


async def test_a_transaction_of_another_publishers_app_is_not_found(
    shop: Shop, worker: Worker, apple_calls: CallCounter
) -> None:
    first, tv = shop.bundle_id, await add_app(shop)
    other = await open_shop(shop.client, shop.sim, shop.context)
    theirs = await other.purchase()
    polled = await _synced(shop, worker, theirs["transactionId"])
    assert (polled["result"], polled["accessGranted"]) == ("TRANSACTION_ID_NOT_FOUND", False)
    assert asked(apple_calls) == [(first, "status", 404), (tv, "status", 404)]
    named = await shop.register(
        shop.customers[0], theirs["transactionId"], bundleId=other.bundle_id
    )
    assert_envelope(named, 400, "REQ0001")
    assert (await shop.subscriptions())["total"] == 0


async def _last_error(shop: Shop, sync_id: str) -> str:
    return str(
        await shop.context.db.fetchval(
            "SELECT last_error FROM synchronizations WHERE publisher_id = $1 AND id = $2",
            shop.publisher.id,
            sync_id,
        )
    )
