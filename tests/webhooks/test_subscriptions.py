"""docs/api.md §5, subscribing: PUT and GET /3.1/webhook_subscriptions, targets, secrets, auth."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.clock import MovableClock
from app.security import SecretBoxError
from app.webhooks.repository import secret_binding
from tests.helpers.api import (
    ADMIN,
    PublisherRef,
    assert_envelope,
    new_customer,
    new_publisher,
    running,
)
from tests.helpers.receiver import Receiver
from tests.helpers.webhooks import (
    TOPIC,
    context_of,
    drain,
    emit_event,
    webhook_settings,
)

URL = f"/3.1/webhook_subscriptions/{TOPIC}"
MY_SECRET = "my-own-shared-secret-0123456789"


def hmac(secret: str) -> dict[str, object]:
    return {"name": "HMAC", "options": {"hashAlg": "SHA256", "sharedSecret": secret}}


async def test_put_answers_the_list_and_shows_generated_secrets_once(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    body = [
        {"url": "https://93.184.216.34/hooks", "verification": hmac(MY_SECRET)},
        {"url": "http://127.0.0.1:9/hooks"},
    ]
    answer = await client.put(URL, json=body, headers=publisher.headers)
    assert answer.status_code == 200, answer.text
    given, generated = answer.json()
    assert given == {
        "url": "https://93.184.216.34/hooks",
        "verification": {"name": "HMAC", "options": {"hashAlg": "SHA256"}},
        "active": True,
    }
    secret = generated["verification"]["options"]["sharedSecret"]
    assert len(secret) == 32 and secret.replace("-", "").replace("_", "").isalnum()
    assert MY_SECRET not in answer.text
    assert answer.headers["cache-control"] == "no-store", "no cache on the way keeps the secret"

    listed = await client.get("/3.1/webhook_subscriptions", headers=publisher.headers)
    assert listed.status_code == 200
    assert listed.json() == {TOPIC: [given, {**generated, "verification": given["verification"]}]}
    assert MY_SECRET not in listed.text and secret not in listed.text


async def test_put_replaces_the_topics_list(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    first, second = "http://127.0.0.1:9/first", "http://127.0.0.1:9/second"
    for urls in ([first, second], [second]):
        answer = await client.put(URL, json=[{"url": u} for u in urls], headers=publisher.headers)
        assert [e["url"] for e in answer.json()] == urls
    other = "/3.1/webhook_subscriptions/subscriptionCreated"
    await client.put(other, json=[{"url": first}], headers=publisher.headers)
    listed = (await client.get("/3.1/webhook_subscriptions", headers=publisher.headers)).json()
    assert {t: [e["url"] for e in es] for t, es in listed.items()} == {
        TOPIC: [second],
        "subscriptionCreated": [first],
    }
    assert (await client.put(URL, json=[], headers=publisher.headers)).json() == []
    listed = (await client.get("/3.1/webhook_subscriptions", headers=publisher.headers)).json()
    assert list(listed) == ["subscriptionCreated"]


async def test_each_publisher_sees_its_own(client: httpx.AsyncClient) -> None:
    mine, theirs = await new_publisher(client), await new_publisher(client)
    await client.put(URL, json=[{"url": "http://127.0.0.1:9/mine"}], headers=mine.headers)
    listed = await client.get("/3.1/webhook_subscriptions", headers=theirs.headers)
    assert listed.json() == {}


async def test_secrets_are_encrypted_at_rest_and_never_logged(
    app: FastAPI,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = [{"url": receiver.url("at-rest"), "verification": hmac(MY_SECRET)}]
    assert (await client.put(URL, json=body, headers=publisher.headers)).status_code == 200
    receiver["at-rest"].secret = MY_SECRET
    await emit_event(app, publisher.id)
    await drain(app)
    assert len(receiver["at-rest"].verified()) == 1

    context = context_of(app)
    stored = await context.db.fetchval(
        "SELECT secret_encrypted FROM webhook_endpoints WHERE publisher_id = $1", publisher.id
    )
    assert stored is not None and MY_SECRET.encode() not in stored
    bound_to = secret_binding(publisher.id, TOPIC, receiver.url("at-rest"))
    assert context.secrets.open(stored, purpose="webhook-secret", bound_to=bound_to) == MY_SECRET
    assert context.secrets.is_current(stored, purpose="webhook-secret")
    elsewhere = secret_binding(publisher.id, TOPIC, receiver.url("elsewhere"))
    with pytest.raises(SecretBoxError):  # sealed for its own row: copied to another, it is junk
        context.secrets.open(stored, purpose="webhook-secret", bound_to=elsewhere)
    assert MY_SECRET not in caplog.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:9/x"}, "body"),
        ([{"url": "ftp://127.0.0.1/x"}], "0.url"),
        ([{"url": "http:///no-host"}], "0.url"),
        ([{"url": "not a url"}], "0.url"),
        ([{"url": "http://127.0.0.1:9/x", "verification": hmac("short")}], "sharedSecret"),
        ([{"url": "http://127.0.0.1:9/x", "verification": hmac("x" * 65)}], "sharedSecret"),
        (
            [
                {
                    "url": "http://127.0.0.1:9/x",
                    "verification": {"name": "HMAC", "options": {"hashAlg": "MD5"}},
                }
            ],
            "hashAlg",
        ),
        ([{"url": "http://127.0.0.1:9/x"}, {"url": "http://127.0.0.1:9/x"}], "1.url"),
        ([{"url": f"http://127.0.0.1:9/{n}"} for n in range(11)], "body"),
        ([{"url": "http://127.0.0.1:9/x", "extra": 1}], "extra"),
    ],
)
async def test_invalid_bodies(
    client: httpx.AsyncClient, publisher: PublisherRef, body: object, field: str
) -> None:
    answer = await client.put(URL, json=body, headers=publisher.headers)
    assert field in str(assert_envelope(answer, 400, "REQ0001")["details"])


async def test_unknown_topic_is_an_invalid_path(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    answer = await client.put(
        "/3.1/webhook_subscriptions/noSuchTopic", json=[], headers=publisher.headers
    )
    assert_envelope(answer, 400, "REQ0003")


PRIVATE_TARGETS = [
    "http://127.0.0.1/x",
    "http://localhost/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/x",
    "http://0.0.0.0/x",
    "http://224.0.0.1/x",
    "http://[::1]/x",
    "http://[fe80::1]/x",
    "http://[fd00::1]/x",
    "http://[::ffff:127.0.0.1]/x",
]


async def test_private_targets_are_refused_unless_allowed(
    webhooks_database_url: str, data_dir: Path, clock: MovableClock, client: httpx.AsyncClient
) -> None:
    strict = webhook_settings(webhooks_database_url, data_dir, webhook_allow_private_networks=False)
    async with running(strict, clock) as (_, strict_client):
        publisher = await new_publisher(strict_client)
        for url in PRIVATE_TARGETS:
            answer = await strict_client.put(URL, json=[{"url": url}], headers=publisher.headers)
            body = assert_envelope(answer, 400, "REQ0001")
            assert "private" in str(body["details"]), (url, body)
        public = [{"url": "https://93.184.216.34/hooks"}, {"url": "http://[2606:4700::1111]/x"}]
        answer = await strict_client.put(URL, json=public, headers=publisher.headers)
        assert answer.status_code == 200, answer.text
    allowing = await new_publisher(client)  # the fixture's app allows private networks
    answer = await client.put(URL, json=[{"url": PRIVATE_TARGETS[0]}], headers=allowing.headers)
    assert answer.status_code == 200, answer.text


NOT_VALID_HOSTS = [
    "http://" + "a" * 64 + ".com/h",  # a label longer than 63 characters
    "http://a..b.com/h",  # an empty label
    "http://xn--zz.com/h",  # an IDNA A-label that decodes to nothing
]


async def test_a_host_name_that_is_not_valid_is_refused(
    webhooks_database_url: str,
    data_dir: Path,
    clock: MovableClock,
    client: httpx.AsyncClient,
    publisher: PublisherRef,
) -> None:
    """Whether the name would be looked up (private networks refused) or not (allowed)."""
    expected = [{"field": "0.url", "problem": "has a host name that is not valid"}]
    for url in NOT_VALID_HOSTS:
        answer = await client.put(URL, json=[{"url": url}], headers=publisher.headers)
        assert assert_envelope(answer, 400, "REQ0001")["details"] == expected, url
    strict = webhook_settings(webhooks_database_url, data_dir, webhook_allow_private_networks=False)
    async with running(strict, clock) as (_, strict_client):
        other = await new_publisher(strict_client)
        for url in NOT_VALID_HOSTS:
            answer = await strict_client.put(URL, json=[{"url": url}], headers=other.headers)
            assert assert_envelope(answer, 400, "REQ0001")["details"] == expected, url


async def test_credentials(client: httpx.AsyncClient, publisher: PublisherRef) -> None:
    body = [{"url": "http://127.0.0.1:9/x"}]
    assert_envelope(await client.put(URL, json=body), 401, "AUTH0001")
    assert_envelope(await client.get("/3.1/webhook_subscriptions"), 401, "AUTH0001")
    wrong = {"X-Publisher-Token": "skp_wrong"}
    assert_envelope(await client.put(URL, json=body, headers=wrong), 401, "AUTH0002")
    assert_envelope(await client.put(URL, json=body, headers=ADMIN), 403, "AUTH0003")
    customer_id = await new_customer(client, publisher)
    token = await client.post(
        f"/admin/publishers/{publisher.id}/customers/{customer_id}/tokens", headers=ADMIN
    )
    bearer = {"Authorization": f"Bearer {token.json()['jwt']}"}
    assert_envelope(await client.get("/3.1/webhook_subscriptions", headers=bearer), 403, "AUTH0003")
