"""What Apple said to a sync is kept with it, decoded and verified, never as the signed JWS."""

from __future__ import annotations

import json
from typing import Any

from app.jobs.worker import Worker
from tests.helpers import db
from tests.helpers.shop import Shop


async def _apple_data(shop: Shop, sync_id: str) -> dict[str, Any] | None:
    raw = await db.scalar(
        shop.context.db,
        "SELECT apple_data FROM synchronizations WHERE publisher_id = $1 AND id = $2",
        shop.publisher.id,
        sync_id,
    )
    return None if raw is None else dict(json.loads(raw))


def _no_jws(value: object) -> None:
    """Nowhere a compact JWS (three base64url parts, the first a JSON header)."""
    if isinstance(value, dict):
        for item in value.values():
            _no_jws(item)
    elif isinstance(value, list):
        for item in value:
            _no_jws(item)
    else:
        assert not (isinstance(value, str) and value.startswith("eyJ") and value.count(".") == 2)


async def test_a_subscription_keeps_its_transaction_renewal_info_and_status(
    shop: Shop, worker: Worker
) -> None:
    bought = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    said = await _apple_data(shop, sync_id)
    assert said is not None
    assert said["transaction"]["transactionId"] == bought["transactionId"]
    assert said["transaction"]["originalTransactionId"] == bought["originalTransactionId"]
    assert said["transaction"]["expiresDate"] == bought["expiresDate"]
    assert said["transaction"]["bundleId"] == shop.bundle_id
    assert said["renewalInfo"]["originalTransactionId"] == bought["originalTransactionId"]
    assert said["renewalInfo"]["autoRenewStatus"] == 1
    assert said["status"] == 1
    assert "latestTransaction" not in said  # the transaction asked about is the latest
    _no_jws(said)


async def test_a_renewed_subscription_keeps_its_latest_transaction(
    shop: Shop, worker: Worker
) -> None:
    """Asked about the original transaction, Apple answers with the subscription's status: its
    latest transaction, which is what is kept (the original one was never returned by itself)."""
    bought = await shop.purchase()
    renewed = await shop.act(bought["transactionId"], "renew")
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    said = await _apple_data(shop, sync_id)
    assert said is not None
    assert "transaction" not in said
    assert said["latestTransaction"]["transactionId"] == renewed["transactionId"]
    assert said["latestTransaction"]["originalTransactionId"] == bought["transactionId"]
    assert said["renewalInfo"]["originalTransactionId"] == bought["transactionId"]


async def test_an_earlier_renewal_keeps_itself_and_the_latest(shop: Shop, worker: Worker) -> None:
    """A transaction that is no longer its subscription's latest is asked for by itself too."""
    bought = await shop.purchase()
    first = await shop.act(bought["transactionId"], "renew")
    latest = await shop.act(bought["transactionId"], "renew")
    sync_id = await shop.accepted(shop.customers[0], first["transactionId"])
    assert await worker.drain() == 1
    said = await _apple_data(shop, sync_id)
    assert said is not None
    assert said["transaction"]["transactionId"] == first["transactionId"]
    assert said["latestTransaction"]["transactionId"] == latest["transactionId"]
    assert said["status"] == 1


async def test_a_lifetime_purchase_keeps_its_transaction(shop: Shop, worker: Worker) -> None:
    bought = await shop.purchase("non-consumable", "lifetime")
    sync_id = await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    said = await _apple_data(shop, sync_id)
    assert said is not None
    assert set(said) == {"transaction"}
    assert said["transaction"]["type"] == "Non-Consumable"


async def test_nothing_is_kept_when_apple_does_not_know_the_transaction(
    shop: Shop, worker: Worker
) -> None:
    sync_id = await shop.accepted(shop.customers[0], "2000000999999999")
    assert await worker.drain() == 1
    assert (await shop.poll(sync_id))["result"] == "TRANSACTION_ID_NOT_FOUND"
    assert await _apple_data(shop, sync_id) is None
