"""docs/api.md §2: the envelope and the generic codes on every route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from starlette.types import Message

from tests.helpers.api import ADMIN, assert_envelope, new_publisher


async def test_unknown_route_is_req0100(client: httpx.AsyncClient) -> None:
    body = assert_envelope(await client.get("/no/such/thing"), 404, "REQ0100")
    assert body["message"] == (
        "Entity not found: no route for GET /no/such/thing (the API's endpoints are at /docs)"
    )


async def test_wrong_method_keeps_the_envelope(client: httpx.AsyncClient) -> None:
    answer = await client.delete("/healthz")
    body = assert_envelope(answer, 405, "REQ0100")
    assert answer.headers["allow"] == "GET"
    assert body["message"] == "Method not allowed: /healthz takes GET, not DELETE"


async def test_a_missing_resource_is_named(client: httpx.AsyncClient) -> None:
    publisher = await new_publisher(client)
    answer = await client.get("/purchases/synchronizations/nope-42", headers=publisher.headers)
    body = assert_envelope(answer, 404, "REQ0100")
    assert body["message"] == "Entity not found: synchronization nope-42 for this caller"
    url = f"/admin/publishers/{publisher.id}/customers/123456789"
    body = assert_envelope(await client.get(url, headers=publisher.headers), 404, "REQ0100")
    assert body["message"] == "Entity not found: customer 123456789 of this publisher"
    body = assert_envelope(
        await client.get("/admin/publishers/1/offers", headers=ADMIN), 404, "REQ0100"
    )
    assert body["message"] == "Entity not found: publisher 1"


async def test_a_bad_query_parameter_is_named(client: httpx.AsyncClient) -> None:
    publisher = await new_publisher(client)
    answer = await client.get("/3.1/subscriptions?limit=1000", headers=publisher.headers)
    body = assert_envelope(answer, 400, "REQ0001")
    assert body["message"] == (
        "Invalid query parameter: limit: Input should be less than or equal to 100"
    )
    assert body["details"] == [
        {"field": "limit", "problem": "Input should be less than or equal to 100"}
    ]
    answer = await client.get("/3.1/subscriptions?limit=0&status=gone", headers=publisher.headers)
    message = assert_envelope(answer, 400, "REQ0001")["message"]
    assert isinstance(message, str) and message.startswith("Invalid query parameters: ")
    assert "status: " in message and "limit: " in message and "Invalid body" not in message


async def test_a_body_not_sent_as_json_says_what_is_expected(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "Acme"}).encode()
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {**ADMIN, **({"content-type": content_type} if content_type else {})}
        answer = await client.post("/admin/publishers", content=body, headers=headers)
        envelope = assert_envelope(answer, 400, "REQ0001")
        message = str(envelope["message"])
        assert "expected a JSON body with Content-Type: application/json" in message, message
        assert "dictionary" not in message and "dictionary" not in answer.text
        assert (content_type or "no Content-Type") in message
    answer = await client.post(
        "/admin/publishers", headers={**ADMIN, "content-type": "application/json"}
    )
    message = str(assert_envelope(answer, 400, "REQ0001")["message"])
    assert message == "Invalid body: a JSON body is required, with Content-Type: application/json"
    answer = await client.post("/admin/publishers", json=[1], headers=ADMIN)
    body_ = assert_envelope(answer, 400, "REQ0001")
    assert body_["message"] == "Invalid body: Input should be a JSON object"


async def test_validation_problems_speak_of_the_json(client: httpx.AsyncClient) -> None:
    """No pydantic internals: no validator names in a field, no "Value error," prefix."""
    publisher = await new_publisher(client)
    body = {"cleengCustomerId": 1, "transactionId": "1", "ipAddress": "1.2.3", "extra": 1}
    answer = await client.post("/storekit2/purchases", json=body, headers=publisher.headers)
    details = assert_envelope(answer, 400, "REQ0001")["details"]
    assert details == [
        {"field": "ipAddress", "problem": "Input is not a valid IPv4 address or IPv6 address"},
        {"field": "extra", "problem": "Unknown field"},
    ]
    answer = await client.post("/admin/publishers", json={"name": "A", "a b": 1}, headers=ADMIN)
    details = assert_envelope(answer, 400, "REQ0001")["details"]
    assert details == [{"field": "a b", "problem": "Unknown field"}]
    app = {"keyId": "ABCDEFGHIJ", "issuerId": "x", "privateKey": "no", "environment": "Sandbox"}
    url = f"/admin/publishers/{publisher.id}/storekit2/apps/com.acme.tv"
    answer = await client.put(url, json=app, headers=publisher.headers)
    details = assert_envelope(answer, 400, "REQ0001")["details"]
    assert details == [{"field": "privateKey", "problem": "must be an unencrypted PEM private key"}]


async def test_the_root_points_to_the_docs(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.json()["docs"] == "/docs" and answer.json()["console"] == "/console"


async def test_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/admin/publishers",
        content=b"{not json",
        headers={**ADMIN, "content-type": "application/json"},
    )
    body = assert_envelope(answer, 400, "REQ0001")
    assert str(body["message"]).startswith("Invalid body: not valid JSON: Expecting")


async def test_wrong_types_list_the_fields(client: httpx.AsyncClient) -> None:
    answer = await client.post("/admin/publishers", json={"name": 42}, headers=ADMIN)
    body = assert_envelope(answer, 400, "REQ0001")
    assert body["details"] == [{"field": "name", "problem": "Input should be a valid string"}]


async def test_missing_and_unknown_fields(client: httpx.AsyncClient) -> None:
    answer = await client.post("/admin/publishers", json={"nom": "x"}, headers=ADMIN)
    body = assert_envelope(answer, 400, "REQ0001")
    fields = {d["field"] for d in body["details"]}  # type: ignore[attr-defined]
    assert fields == {"name", "nom"}


async def test_malformed_path_parameter_is_req0003(client: httpx.AsyncClient) -> None:
    answer = await client.get("/admin/publishers/abc/offers", headers=ADMIN)
    assert_envelope(answer, 400, "REQ0003")


async def test_body_over_64k_by_content_length(client: httpx.AsyncClient) -> None:
    big = json.dumps({"name": "x" * (64 * 1024)})
    answer = await client.post(
        "/admin/publishers", content=big, headers={**ADMIN, "content-type": "application/json"}
    )
    assert_envelope(answer, 413, "REQ0005")


async def test_streamed_body_over_64k_stops_reading(app: FastAPI) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 800 KiB offered, in 8 KiB chunks
            sent += 1
            yield b" " * 8192

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        answer = await client.post(
            "/admin/publishers",
            content=chunks(),
            headers={**ADMIN, "content-type": "application/json"},
        )
    assert_envelope(answer, 413, "REQ0005")
    assert sent < 20, f"read {sent} chunks after passing the limit"


async def test_bad_correlation_id_is_req0004(client: httpx.AsyncClient) -> None:
    for value in ("x" * 257, "tab\there", "bell\x07"):
        answer = await client.get("/healthz", headers={"Correlation-Id": value})
        assert_envelope(answer, 400, "REQ0004")
    for value in ("ok-123", "order 42 / retry", "x" * 256):  # printable, spaces included
        assert (await client.get("/healthz", headers={"Correlation-Id": value})).status_code == 200


async def test_unexpected_exception_is_s0001_without_trace(app: FastAPI) -> None:
    @app.get("/boom-for-test")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        answer = await client.get("/boom-for-test")
    body = assert_envelope(answer, 500, "S0001")
    assert "secret internals" not in json.dumps(body)


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_answer_is_sent_only_after_commit(app: FastAPI) -> None:
    """The unit of work commits before the first byte of the answer leaves (docs/api.md §3's promise)."""
    from app.context import Context

    context: Context = app.state.context
    seen_at_start: list[int] = []

    async def count() -> int:
        return int(await context.db.fetchval("SELECT count(*) FROM publishers"))

    before = await count()
    body = json.dumps({"name": "Committed first"}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/admin/publishers",
        "raw_path": b"/admin/publishers",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-admin-token", ADMIN["X-Admin-Token"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("service", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 201
            seen_at_start.append(await count())

    await app(scope, receive, send)
    assert seen_at_start == [before + 1]


async def test_openapi_lists_each_endpoints_error_codes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    register = document["paths"]["/storekit2/purchases"]["post"]
    assert register["operationId"] == "registerPurchase"
    codes = {
        status: set(answer["content"]["application/json"]["examples"])
        for status, answer in register["responses"].items()
        if status.startswith(("4", "5"))
    }
    assert codes["400"] == {"REQ0001", "REQ0004"}
    assert codes["409"] == {"SK2C0101"}
    assert codes["422"] == {"SK2C0100"}
    assert codes["500"] == {"SK2C0004", "S0001"}
    for path in document["paths"].values():
        for operation in path.values():
            assert "HTTPValidationError" not in json.dumps(operation)
    assert (await client.get("/docs")).status_code == 200


async def test_what_an_answer_repeats_of_the_request_is_bounded(
    client: httpx.AsyncClient,
) -> None:
    """A path, a Content-Type or an unknown field's name is repeated at most 120 characters long,
    however long it came; a Content-Type that is not a media type is not repeated at all."""
    answer = await client.get("/x" + "a" * 20_000)
    message = assert_envelope(answer, 404, "REQ0100")["message"]
    assert isinstance(message, str) and len(message) < 250
    body = json.dumps({"name": "x"}).encode()
    for content_type in ("text/" + "p" * 20_000, "Bearer eyJhbGciOi.secret.jwt"):
        headers = {**ADMIN, "Content-Type": content_type}
        answer = await client.post("/admin/publishers", content=body, headers=headers)
        message = assert_envelope(answer, 400, "REQ0001")["message"]
        assert isinstance(message, str) and len(message) < 250
        assert "secret" not in message and "not a media type" in message
    answer = await client.post(
        "/admin/publishers", json={"name": "x", "k" * 20_000: 1}, headers=ADMIN
    )
    details = assert_envelope(answer, 400, "REQ0001")["details"]
    assert isinstance(details, list) and len(details) == 1
    assert len(details[0]["field"]) <= 120 and details[0]["problem"] == "Unknown field"


async def test_an_unknown_field_is_named_as_the_client_wrote_it(
    client: httpx.AsyncClient,
) -> None:
    """Keys that look like pydantic's validator names (brackets, parentheses, "-or-") are the
    client's own, and named."""
    given = {"name": "x", "a[0]": 1, "x-or-y": 2, "f(x)": 3}
    answer = await client.post("/admin/publishers", json=given, headers=ADMIN)
    details = assert_envelope(answer, 400, "REQ0001")["details"]
    assert isinstance(details, list)
    assert {d["field"] for d in details} == {"a[0]", "x-or-y", "f(x)"}
    assert {d["problem"] for d in details} == {"Unknown field"}


async def test_messages_begin_with_the_contracts_words(client: httpx.AsyncClient) -> None:
    publisher = await new_publisher(client)
    url = f"/admin/publishers/{publisher.id}/customers/abc"
    message = assert_envelope(await client.get(url, headers=ADMIN), 400, "REQ0003")["message"]
    assert isinstance(message, str) and message.startswith("Invalid path parameters: customerId")
    answer = await client.get("/purchases/synchronizations/a%01b", headers=publisher.headers)
    message = assert_envelope(answer, 400, "REQ0003")["message"]
    assert isinstance(message, str) and message.startswith("Invalid path parameters: ")
    both = {**ADMIN, **publisher.headers}
    answer = await client.get("/3.1/subscriptions", headers=both)
    details = assert_envelope(answer, 400, "REQ0004")["details"]
    assert isinstance(details, list)
    assert {d["field"] for d in details} == {"X-Admin-Token", "X-Publisher-Token"}


async def test_a_405_outside_the_api_names_what_the_page_takes(client: httpx.AsyncClient) -> None:
    for path, allowed in (
        ("/static/swagger-ui/swagger-ui.css", "GET, HEAD"),
        ("/docs", "GET"),
    ):
        answer = await client.post(path)
        body = assert_envelope(answer, 405, "REQ0100")
        assert answer.headers["allow"] == allowed
        assert body["message"] == f"Method not allowed: {path} takes {allowed}, not POST"
