"""docs/api.md §5, deliveries API: list with filters, replay, and who may see which deliveries."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.helpers.api import ADMIN, PublisherRef, assert_envelope, new_publisher
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.webhooks import TOPIC, drain, emit_event, subscribe

OTHER_TOPIC = "subscriptionCreated"
ITEM_KEYS = {
    "deliveryId",
    "webhookId",
    "topic",
    "url",
    "status",
    "attempts",
    "lastStatusCode",
    "lastError",
    "nextAttemptAt",
    "createdAt",
}


def base(publisher: PublisherRef) -> str:
    return f"/admin/publishers/{publisher.id}/webhook-deliveries"


async def _three_deliveries(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    """Oldest first: succeeded (TOPIC), pending after a 500 (TOPIC), succeeded (OTHER_TOPIC)."""
    await subscribe(client, publisher, receiver, ["listed"])
    other = [{"url": receiver.url("listed-other")}]
    answer = await client.put(
        f"/3.1/webhook_subscriptions/{OTHER_TOPIC}", json=other, headers=publisher.headers
    )
    receiver["listed-other"].secret = answer.json()[0]["verification"]["options"]["sharedSecret"]
    receiver["listed"].replies.extend([Reply(200), Reply(500)])
    for topic in (TOPIC, TOPIC, OTHER_TOPIC):
        await emit_event(app, publisher.id, topic)
        await drain(app)


async def test_list_newest_first_with_filters(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await _three_deliveries(app, client, publisher, receiver)
    items = (await client.get(base(publisher), headers=publisher.headers)).json()["items"]
    assert [(i["topic"], i["status"]) for i in items] == [
        (OTHER_TOPIC, "succeeded"),
        (TOPIC, "pending"),
        (TOPIC, "succeeded"),
    ]
    assert all(set(i) == ITEM_KEYS for i in items)
    pending = items[1]
    assert (pending["attempts"], pending["lastStatusCode"], pending["lastError"]) == (
        1,
        500,
        "HTTP 500",
    )
    assert pending["nextAttemptAt"] is not None and items[0]["nextAttemptAt"] is None
    assert pending["url"] == receiver.url("listed") and pending["webhookId"].startswith("msg_")

    async def ids(query: str) -> list[int]:
        answer = await client.get(f"{base(publisher)}?{query}", headers=publisher.headers)
        assert answer.status_code == 200, answer.text
        return [i["deliveryId"] for i in answer.json()["items"]]

    assert await ids("status=pending") == [pending["deliveryId"]]
    assert await ids(f"topic={OTHER_TOPIC}") == [items[0]["deliveryId"]]
    assert await ids(f"status=succeeded&topic={TOPIC}") == [items[2]["deliveryId"]]
    assert await ids("status=failed") == []
    assert await ids("limit=2") == [items[0]["deliveryId"], items[1]["deliveryId"]]


async def test_list_rejects_bad_filters(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    for query in ("limit=0", "limit=101", "status=lost", "topic=noSuchTopic"):
        answer = await client.get(f"{base(publisher)}?{query}", headers=publisher.headers)
        assert_envelope(answer, 400, "REQ0001")


async def test_publishers_see_only_their_own(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef, receiver: Receiver
) -> None:
    await _three_deliveries(app, client, publisher, receiver)
    other = await new_publisher(client)
    mine = (await client.get(base(publisher), headers=ADMIN)).json()["items"]
    assert len(mine) == 3
    assert (await client.get(base(other), headers=other.headers)).json() == {"items": []}
    delivery_id = mine[0]["deliveryId"]
    replay_as_other = f"{base(other)}/{delivery_id}/replay"
    assert_envelope(await client.post(replay_as_other, headers=other.headers), 404, "REQ0100")
    assert_envelope(await client.post(replay_as_other, headers=ADMIN), 404, "REQ0100")
    assert_envelope(await client.get(base(publisher), headers=other.headers), 403, "AUTH0003")
    replay = f"{base(publisher)}/{delivery_id}/replay"
    assert_envelope(await client.post(replay, headers=other.headers), 403, "AUTH0003")
    assert (await client.post(replay, headers=ADMIN)).status_code == 202


async def test_credentials_and_paths(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    assert_envelope(await client.get(base(publisher)), 401, "AUTH0001")
    assert_envelope(await client.post(f"{base(publisher)}/1/replay"), 401, "AUTH0001")
    bad = {"X-Publisher-Token": "skp_nope"}
    assert_envelope(await client.get(base(publisher), headers=bad), 401, "AUTH0002")
    missing = "/admin/publishers/999999998/webhook-deliveries"
    assert_envelope(await client.get(missing, headers=ADMIN), 404, "REQ0100")
    malformed = f"{base(publisher)}/not-a-number/replay"
    assert_envelope(await client.post(malformed, headers=publisher.headers), 400, "REQ0003")
    unknown = f"{base(publisher)}/999999999/replay"
    assert_envelope(await client.post(unknown, headers=publisher.headers), 404, "REQ0100")
