"""A sync's webhooks leave from the sync job itself, right after its commit: no queue trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.jobs.worker import Worker
from app.simulator.server import SimulatorServer
from tests.helpers.receiver import Receiver
from tests.helpers.shop import Shop, sync_settings

TOPICS = ("inappPurchaseValidationSucceeded", "subscriptionCreated", "inappPurchaseSyncResult")


@pytest.fixture
def settings(
    database_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(
        database_url, data_dir, simulator, root_path, webhook_allow_private_networks=True
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


async def _subscribe(shop: Shop, receiver: Receiver) -> None:
    """Each topic to an endpoint of its own (each subscription has its own secret)."""
    for topic in TOPICS:
        answer = await shop.client.put(
            f"/3.1/webhook_subscriptions/{topic}",
            json=[{"url": receiver.url(topic)}],
            headers=shop.publisher.headers,
        )
        assert answer.status_code == 200, answer.text
        receiver[topic].secret = answer.json()[0]["verification"]["options"]["sharedSecret"]


async def test_the_sync_job_delivers_its_own_webhooks(
    shop: Shop, worker: Worker, receiver: Receiver
) -> None:
    await _subscribe(shop, receiver)
    purchase = await shop.purchase()
    sync_id = await shop.accepted(shop.customers[0], purchase["transactionId"])
    assert await worker.drain() == 1, "only the sync job ran: no delivery job was queued"
    for topic in TOPICS:
        (body,) = receiver[topic].verified()
        assert body["topic"] == topic
    (result,) = receiver["inappPurchaseSyncResult"].verified()
    assert result["data"]["synchronizationId"] == sync_id
    db = shop.context.db
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    settled = await db.fetch(
        "SELECT status, attempts FROM webhook_deliveries WHERE publisher_id = $1", shop.publisher.id
    )
    assert [(row["status"], row["attempts"]) for row in settled] == [("succeeded", 1)] * 3


async def test_a_transfer_reaches_one_url_in_the_order_of_spec(
    shop: Shop, worker: Worker, receiver: Receiver
) -> None:
    """docs/api.md §5: validation, the old subscription's end, the new one, the result: one after
    another at a URL subscribed to every topic, from the sync job that sent them."""
    secret = "one-secret-for-every-topic-here"
    hmac = {"name": "HMAC", "options": {"hashAlg": "SHA256", "sharedSecret": secret}}
    order = [
        "inappPurchaseValidationSucceeded",
        "subscriptionTerminated",
        "subscriptionCreated",
        "inappPurchaseSyncResult",
    ]
    for topic in order:
        body = [{"url": receiver.url("everything"), "verification": hmac}]
        url = f"/3.1/webhook_subscriptions/{topic}"
        assert (await shop.client.put(url, json=body, headers=shop.publisher.headers)).is_success
    receiver["everything"].secret = secret
    bought = await shop.purchase()
    await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    receiver["everything"].arrivals.clear()
    await shop.accepted(shop.customers[1], bought["transactionId"])  # moves it
    assert await worker.drain() == 1
    assert [body["topic"] for body in receiver["everything"].verified()] == order
