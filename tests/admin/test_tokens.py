"""docs/api.md §7: publisher tokens that rotate and revoke; a revoked token stops working everywhere
within one second; lastUsedAt without a write per request."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

import httpx

from app.admin.repository import MAX_TOKENS_PER_PUBLISHER
from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from tests.helpers.api import ADMIN, PublisherRef, assert_envelope, new_publisher, running


def _tokens_url(publisher: PublisherRef, token_id: str | None = None) -> str:
    base = f"/admin/publishers/{publisher.id}/tokens"
    return base if token_id is None else f"{base}/{token_id}"


def _offers_url(publisher: PublisherRef) -> str:
    return f"/admin/publishers/{publisher.id}/offers"


def _as(token: str) -> dict[str, str]:
    return {"X-Publisher-Token": token}


async def _new_token(client: httpx.AsyncClient, publisher: PublisherRef) -> dict[str, str]:
    answer = await client.post(_tokens_url(publisher), headers=publisher.headers)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return dict(answer.json())


async def _listed(client: httpx.AsyncClient, publisher: PublisherRef) -> list[dict[str, str]]:
    answer = await client.get(_tokens_url(publisher), headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def _until(condition: object, seconds: float, what: str) -> float:
    """Poll `condition` (a coroutine function answering bool) until true; the time it took."""
    started = time.monotonic()
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_another_token_works_beside_the_first(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    made = await _new_token(client, publisher)
    assert set(made) == {"tokenId", "publisherToken", "createdAt"}
    assert made["publisherToken"] != publisher.token
    for token in (publisher.token, made["publisherToken"]):
        assert (await client.get(_offers_url(publisher), headers=_as(token))).status_code == 200
    listed = await _listed(client, publisher)
    assert len(listed) == 2 and listed[1]["tokenId"] == made["tokenId"]
    assert all(set(item) == {"tokenId", "createdAt", "lastUsedAt"} for item in listed)


async def test_a_revoked_token_is_refused_and_the_others_work(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    made = await _new_token(client, publisher)
    token = made["publisherToken"]
    assert (await client.get(_offers_url(publisher), headers=_as(token))).status_code == 200
    gone = await client.delete(_tokens_url(publisher, made["tokenId"]), headers=publisher.headers)
    assert gone.status_code == 204
    assert_envelope(await client.get(_offers_url(publisher), headers=_as(token)), 401, "AUTH0002")
    assert (await client.get(_offers_url(publisher), headers=publisher.headers)).status_code == 200
    assert [item["tokenId"] for item in await _listed(client, publisher)] != [made["tokenId"]]
    again = await client.delete(_tokens_url(publisher, made["tokenId"]), headers=ADMIN)
    assert_envelope(again, 404, "REQ0100")


async def test_the_last_token_can_go_and_the_admin_makes_another(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    (only,) = await _listed(client, publisher)
    gone = await client.delete(_tokens_url(publisher, only["tokenId"]), headers=publisher.headers)
    assert gone.status_code == 204
    refused = await client.get(_tokens_url(publisher), headers=publisher.headers)
    assert_envelope(refused, 401, "AUTH0002")
    assert await _listed(client, publisher) == []
    made = await client.post(_tokens_url(publisher), headers=ADMIN)
    assert made.status_code == 201
    fresh = _as(made.json()["publisherToken"])
    assert (await client.get(_offers_url(publisher), headers=fresh)).status_code == 200


async def test_tokens_of_another_publisher_are_out_of_reach(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    other = await new_publisher(client, "Other")
    (theirs,) = await _listed(client, other)
    # Not my path: forbidden. My path with their token's id: no such token of mine.
    assert_envelope(
        await client.get(_tokens_url(other), headers=publisher.headers), 403, "AUTH0003"
    )
    assert_envelope(
        await client.post(_tokens_url(other), headers=publisher.headers), 403, "AUTH0003"
    )
    forbidden = await client.delete(
        _tokens_url(other, theirs["tokenId"]), headers=publisher.headers
    )
    assert_envelope(forbidden, 403, "AUTH0003")
    missing = await client.delete(
        _tokens_url(publisher, theirs["tokenId"]), headers=publisher.headers
    )
    assert_envelope(missing, 404, "REQ0100")
    assert (await client.get(_offers_url(other), headers=other.headers)).status_code == 200
    malformed = await client.delete(_tokens_url(publisher, "not-a-uuid"), headers=ADMIN)
    assert_envelope(malformed, 400, "REQ0003")
    nobody = await client.delete(_tokens_url(publisher, str(uuid.uuid4())), headers=ADMIN)
    assert_envelope(nobody, 404, "REQ0100")


async def test_a_publisher_has_a_bounded_number_of_tokens(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    answers = await asyncio.gather(
        *(
            client.post(_tokens_url(publisher), headers=ADMIN)
            for _ in range(MAX_TOKENS_PER_PUBLISHER + 3)
        )
    )
    made = [a for a in answers if a.status_code == 201]
    assert len(made) == MAX_TOKENS_PER_PUBLISHER - 1  # beside the first
    for refused in (a for a in answers if a.status_code != 201):
        assert "revoke one" in str(assert_envelope(refused, 400, "REQ0001")["details"])
    assert len(await _listed(client, publisher)) == MAX_TOKENS_PER_PUBLISHER


async def test_secrets_are_never_listed(
    client: httpx.AsyncClient, publisher: PublisherRef, context: Context
) -> None:
    made = await _new_token(client, publisher)
    listed = await client.get(_tokens_url(publisher), headers=ADMIN)
    stored = await context.db.fetch(
        "SELECT token_hash FROM publisher_tokens WHERE publisher_id = $1", publisher.id
    )
    for secret in (made["publisherToken"], publisher.token, *(r["token_hash"] for r in stored)):
        assert secret not in listed.text


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, publisher: PublisherRef, context: Context, clock: MovableClock
) -> None:
    async def last_used() -> datetime | None:
        await context.tokens.written()
        (item,) = await _listed(client, publisher)
        value = item["lastUsedAt"]
        return None if value is None else datetime.fromisoformat(value)

    assert await last_used() is None
    await client.get(_offers_url(publisher), headers=publisher.headers)
    first = await last_used()
    assert first == clock.now()
    clock.advance(30)
    for _ in range(5):
        await client.get(_offers_url(publisher), headers=publisher.headers)
    assert await last_used() == first, "written again within the minute"
    clock.advance(31)
    await client.get(_offers_url(publisher), headers=publisher.headers)
    assert await last_used() == clock.now()


async def test_a_token_revoked_through_one_process_is_refused_by_another_within_a_second(
    client: httpx.AsyncClient, publisher: PublisherRef, settings: Settings, clock: MovableClock
) -> None:
    """Two services on one database, each with its memory of tokens: B has the token in memory
    when A revokes it."""
    made = await _new_token(client, publisher)
    token = made["publisherToken"]
    async with running(settings, clock) as (other_app, other):
        tokens = other_app.state.context.tokens

        async def known_by_b() -> bool:
            answer = await other.get(_offers_url(publisher), headers=_as(token))
            assert answer.status_code == 200
            return bool(tokens.is_known(token))

        await _until(known_by_b, 10, "B keeps the token in memory")
        gone = await client.delete(_tokens_url(publisher, made["tokenId"]), headers=ADMIN)
        revoked_at = time.monotonic()
        assert gone.status_code == 204

        async def refused_by_b() -> bool:
            answer = await other.get(_offers_url(publisher), headers=_as(token))
            return answer.status_code == 401

        await _until(refused_by_b, 1.0, "B refuses the revoked token")
        assert time.monotonic() - revoked_at < 1.0
        assert not tokens.is_known(token)
