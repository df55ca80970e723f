"""Signing in to the console: the cookie, its CSRF token, its end, and the limit on wrong tokens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.clock import MovableClock
from app.config import Settings
from app.security import hash_token
from app.simulator.server import BackgroundServer
from tests.helpers.api import ADMIN, ADMIN_TOKEN, PublisherRef, make_settings, running
from tests.helpers.console import Console, csrf_of, post_form, text_of

STRICT_POLICY = "default-src 'none'"


def _cookie_header(answer: httpx.Response, name: str) -> str:
    found = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert len(found) == 1, answer.headers.get_list("set-cookie")
    return found[0]


async def test_a_page_without_a_session_sends_to_the_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/console", "/console/search?q=1", "/console/customers/123456789"):
        answer = await client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/console/login"
    login = await client.get("/console/login")
    assert login.status_code == 200
    assert login.headers["content-security-policy"].startswith(STRICT_POLICY)
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["cache-control"] == "no-store"
    assert login.headers["x-content-type-options"] == "nosniff"
    cookie = _cookie_header(login, "storekit_console_login").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # served over http here


async def test_the_admin_signs_in_with_a_cookie_that_never_holds_the_token(
    client: httpx.AsyncClient,
) -> None:
    console = Console(client)
    answer = await console.sign_in(ADMIN_TOKEN)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"
    cookie = _cookie_header(answer, "storekit_console")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered
    assert "max-age=28800" in lowered and "path=/console" in lowered
    assert ADMIN_TOKEN not in cookie and hash_token(ADMIN_TOKEN) not in cookie
    page = await console.get("/console")
    assert "Every publisher" in text_of(page.text)
    assert ADMIN_TOKEN not in page.text


async def test_over_https_the_cookie_is_secure_and_host_only(settings: Settings) -> None:
    async with running(settings, MovableClock()) as (_, plain):
        transport = plain._transport
        async with httpx.AsyncClient(transport=transport, base_url="https://service") as http:
            login = await http.get("/console/login")
            assert "__Host-storekit_console_login" in login.headers["set-cookie"]
            answer = await post_form(
                http, "/console/login", csrf=csrf_of(login.text), token=ADMIN_TOKEN
            )
            cookie = _cookie_header(answer, "__Host-storekit_console").lower()
            assert "secure" in cookie and "path=/;" in cookie and "httponly" in cookie
            assert (await http.get("/console")).status_code == 200


async def test_behind_a_trusted_proxy_https_comes_from_x_forwarded_proto(
    served: BackgroundServer,
) -> None:
    """uvicorn trusts X-Forwarded-Proto from the proxies it is told of (loopback by default)."""
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        https = {"X-Forwarded-Proto": "https"}
        login = await http.get("/console/login", headers=https)
        cookie = _cookie_header(login, "__Host-storekit_console_login").lower()
        assert "secure" in cookie


async def test_a_publisher_signs_in_and_sees_only_its_own(
    client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    console = Console(client)
    assert (await console.sign_in(publisher.token)).status_code == 303
    page = await console.get("/console")
    assert f"Publisher {publisher.id}" in text_of(page.text)
    assert "Every publisher" not in text_of(page.text)
    # The admin's choice of publisher is not the publisher's to make.
    other = await client.post(
        "/admin/publishers", json={"name": "Other"}, headers={"X-Admin-Token": ADMIN_TOKEN}
    )
    other_id = other.json()["publisherId"]
    scoped = await console.get("/console", publisher=str(other_id))
    assert f"Publisher {publisher.id}" in text_of(scoped.text)
    assert (await console.get(f"/console/publishers/{other_id}")).status_code == 404
    assert (await console.get("/console/publishers")).headers["location"] == (
        f"/console/publishers/{publisher.id}"
    )


async def test_a_wrong_token_is_refused_and_never_echoed(client: httpx.AsyncClient) -> None:
    console = Console(client)
    wrong = "skp_not-a-token-of-anyone-0123456789"
    answer = await console.sign_in(wrong)
    assert answer.status_code == 401
    assert "That token was not accepted." in text_of(answer.text)
    assert wrong not in answer.text
    assert "storekit_console=" not in answer.headers.get("set-cookie", "")
    assert (await console.sign_in("")).status_code == 401


async def test_a_sign_in_needs_its_form_s_csrf_token(client: httpx.AsyncClient) -> None:
    await client.get("/console/login")
    forged = await post_form(client, "/console/login", csrf="guessed", token=ADMIN_TOKEN)
    assert forged.status_code == 403
    login = await client.get("/console/login")
    csrf = csrf_of(login.text)
    cross = await post_form(
        client, "/console/login", site="cross-site", csrf=csrf, token=ADMIN_TOKEN
    )
    assert cross.status_code == 403
    fresh = httpx.AsyncClient(transport=client._transport, base_url="http://service")
    async with fresh:  # no login cookie: a form made elsewhere
        answer = await post_form(fresh, "/console/login", csrf=csrf, token=ADMIN_TOKEN)
        assert answer.status_code == 403


async def test_a_csrf_token_that_is_not_ascii_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/console/login")
    answer = await post_form(client, "/console/login", csrf="éé", token=ADMIN_TOKEN)
    assert answer.status_code == 403
    assert "This form has expired" in text_of(answer.text)
    assert "Sign in" in text_of(answer.text)


async def test_wrong_tokens_are_limited_per_client(client: httpx.AsyncClient) -> None:
    console = Console(client)
    for _ in range(10):
        assert (await console.sign_in("skp_wrong")).status_code == 401
    refused = await console.sign_in(ADMIN_TOKEN)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in text_of(refused.text)


async def test_the_session_ends_with_its_time(
    client: httpx.AsyncClient, clock: MovableClock
) -> None:
    console = Console(client)
    await console.sign_in(ADMIN_TOKEN)
    clock.advance(8 * 3600 - 60)
    assert (await console.get("/console")).status_code == 200
    clock.advance(120)
    assert (await console.get("/console")).status_code == 303


async def test_the_session_ends_with_its_credential(
    client: httpx.AsyncClient, database_url: str, data_dir: Path, clock: MovableClock
) -> None:
    console = Console(client)
    await console.sign_in(ADMIN_TOKEN)
    cookies = dict(client.cookies)
    rotated = make_settings(database_url, data_dir, admin_token="another-admin-token-0123456789")
    async with running(rotated, clock) as (_, other):
        other.cookies.update(cookies)
        assert (await other.get("/console")).status_code == 303


async def test_a_revoked_publisher_token_ends_its_sessions(
    app: FastAPI, client: httpx.AsyncClient, publisher: PublisherRef
) -> None:
    """A publisher's console session lives as long as the token it was opened with: revoked
    (docs/api.md §7's token endpoints), it ends at its next request; another token's session lives on."""
    tokens = f"/admin/publishers/{publisher.id}/tokens"
    made = (await client.post(tokens, headers=ADMIN)).json()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as browser:
        revoked, kept = Console(browser), Console(client)
        assert (await revoked.sign_in(made["publisherToken"])).status_code == 303
        assert (await kept.sign_in(publisher.token)).status_code == 303
        assert (await revoked.get("/console")).status_code == 200
        gone = await client.delete(f"{tokens}/{made['tokenId']}", headers=ADMIN)
        assert gone.status_code == 204
        assert (await revoked.get("/console")).status_code == 303
        assert (await kept.get("/console")).status_code == 200


async def test_an_altered_session_is_no_session(client: httpx.AsyncClient) -> None:
    console = Console(client)
    await console.sign_in(ADMIN_TOKEN)
    value = client.cookies["storekit_console"]
    body, _, mac = value.partition(".")
    client.cookies.set("storekit_console", f"{body}x.{mac}", path="/console")
    assert (await console.get("/console")).status_code == 303


async def test_signing_out_needs_the_session_s_csrf_token(client: httpx.AsyncClient) -> None:
    console = Console(client)
    await console.sign_in(ADMIN_TOKEN)
    token, console.csrf = console.csrf, "forged"
    assert (await console.post("/console/logout")).status_code == 403
    assert (await console.get("/console")).status_code == 200
    console.csrf = token
    answer = await console.post("/console/logout")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"
    assert (
        'storekit_console=""' in answer.headers["set-cookie"]
        or "max-age=0" in answer.headers["set-cookie"].lower()
    )
    assert (await console.get("/console")).status_code == 303


async def test_sign_in_is_not_in_the_api_reference(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


async def test_a_clock_far_ahead_expires_the_sign_in_form(
    client: httpx.AsyncClient, clock: MovableClock
) -> None:
    login = await client.get("/console/login")
    clock.advance(timedelta(hours=2).total_seconds())
    late = await post_form(client, "/console/login", csrf=csrf_of(login.text), token=ADMIN_TOKEN)
    assert late.status_code == 403
