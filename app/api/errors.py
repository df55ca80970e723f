"""Every error answers in the envelope of docs/api.md §2: the handlers FastAPI calls."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.db import DatabaseUnavailable

log = logging.getLogger("app.errors")

_LOCATION_ERRORS: dict[str, type[errors.CleengError]] = {
    "path": errors.InvalidPathParameters,
    "header": errors.InvalidHeaders,
}
_LOCATION_NAMES = {"query": "query parameter", "path": "path parameter", "header": "header"}
_STATUS_ERRORS: dict[int, type[errors.CleengError]] = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    401: errors.MissingCredentials,
}
# pydantic's own words where they name its internals rather than the API's JSON.
_PROBLEMS = {
    "model_attributes_type": "Input should be a JSON object",
    "dict_type": "Input should be a JSON object",
    "model_type": "Input should be a JSON object",
    "list_type": "Input should be a JSON array",
    "missing": "Field required",
    "extra_forbidden": "Unknown field",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")
JSON = "application/json"
# pydantic's names for its own validators in an error's location (the members of a union, the
# steps of a chain), never a field of the API's JSON.
_VALIDATOR = re.compile(
    r"(function-(after|before|wrap|plain)|lax-or-strict|json-or-python|union|tagged-union|chain"
    r"|nullable|default|model|model-fields|definition-ref)\[.*\]"
)
_MEDIA_TYPE = re.compile(r"[\w.+-]{1,64}/[\w.+-]{1,64}")
ECHO_LIMIT = 120  # what an answer repeats of a request (a path, a method, a field's name)


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """A piece of the request as an answer repeats it: at most `limit` characters."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _error_response(
    error: errors.CleengError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    merged = {**error.headers(), **(headers or {})}
    return JSONResponse(error.body(), status_code=error.status, headers=merged)


def _is_field(part: object) -> bool:
    """A segment of an error's location that names a field or an index, not one of pydantic's
    validators (`lax-or-strict[...]`, `function-after[...]`: the members of a union)."""
    return isinstance(part, int) or (isinstance(part, str) and not _VALIDATOR.fullmatch(part))


def _field_name(error: Mapping[str, Any]) -> str:
    """Where the problem is, as the client wrote it; an unknown field's own name is kept whatever
    it looks like (it is the client's key, not one of pydantic's names)."""
    loc = tuple(error["loc"])
    if len(loc) <= 1:
        return clip(".".join(str(p) for p in loc))
    parts = [str(p) for p in loc[1:-1] if _is_field(p)]
    last = loc[-1]
    if error.get("type") == "extra_forbidden" or _is_field(last):
        parts.append(str(last))
    return clip(".".join(parts) or str(loc[0]))


def _problem(error: Mapping[str, Any]) -> str:
    known = _PROBLEMS.get(str(error.get("type")))
    if known is not None:
        return known
    message = str(error.get("msg", "invalid"))
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def _either(problems: list[str]) -> str:
    """The problems of one field (each member of a union refused it) as one sentence: "Input is
    not a valid IPv4 address or IPv6 address"."""
    if len(problems) == 1:
        return problems[0]
    words = [p.split(" ") for p in problems]
    shared = 0
    while all(len(w) > shared + 1 and w[shared] == words[0][shared] for w in words):
        shared += 1
    head = " ".join(words[0][:shared])
    rest = [" ".join(w[shared:]) for w in words]
    return f"{head} {' or '.join(rest)}".strip()


def _details(problems: list[Mapping[str, Any]]) -> list[errors.ErrorDetail]:
    by_field: dict[str, list[str]] = {}
    for p in problems:
        found = by_field.setdefault(_field_name(p), [])
        if (problem := _problem(p)) not in found:
            found.append(problem)
    return [errors.ErrorDetail(field=f, problem=_either(ps)) for f, ps in by_field.items()]


def _content_type(request: Request) -> str | None:
    """The request's media type as an answer may repeat it: only when it looks like one."""
    value = request.headers.get("content-type")
    if not value:
        return None
    media = value.split(";")[0].strip().lower()
    return media if _MEDIA_TYPE.fullmatch(media) else "not a media type"


def _body_error(request: Request, exc: RequestValidationError) -> errors.CleengError | None:
    """The body as a whole refused: not JSON, not sent as JSON, absent, or not an object."""
    problems = exc.errors()
    first = problems[0]
    if first.get("type") == "json_invalid":
        where = first["loc"][1] if len(first["loc"]) > 1 else 0
        problem = f"{first.get('ctx', {}).get('error', 'not JSON')} (at character {where})"
        return errors.InvalidBody(
            errors.detail("body", problem), message=f"Invalid body: not valid JSON: {problem}"
        )
    if tuple(first["loc"]) != ("body",):
        return None
    if isinstance(exc.body, bytes | bytearray):  # a body FastAPI did not read as JSON
        given = _content_type(request)
        said = f"Content-Type is {given}" if given else "no Content-Type"
        message = f"Invalid body: expected a JSON body with Content-Type: {JSON} ({said})"
        return errors.InvalidBody(errors.detail("Content-Type", f"must be {JSON}"), message)
    if first.get("type") == "missing":
        message = f"Invalid body: a JSON body is required, with Content-Type: {JSON}"
        return errors.InvalidBody(errors.detail("body", "Field required"), message)
    problem = _problem(first)
    return errors.InvalidBody(errors.detail("body", problem), f"Invalid body: {problem}")


def _located_error(where: str, details: list[errors.ErrorDetail]) -> errors.CleengError:
    """A query parameter, a path parameter or a header refused: the message names it."""
    error_class = _LOCATION_ERRORS.get(where, errors.InvalidBody)
    name = _LOCATION_NAMES.get(where)
    if name is None:
        return error_class(details)
    named = "; ".join(f"{d.field}: {d.problem}" for d in details)
    # The contract's own words first where it has them ("Invalid path parameters", "Invalid
    # headers"); a query parameter is named as one.
    plural = "s" if len(details) > 1 or where in _LOCATION_ERRORS else ""
    return error_class(details, message=f"Invalid {name}{plural}: {named}")


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    where = str(problems[0]["loc"][0]) if problems and problems[0]["loc"] else "body"
    if where == "body" and (whole := _body_error(request, exc)) is not None:
        return _error_response(whole)
    return _error_response(_located_error(where, _details(list(problems))))


async def on_cleeng_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.CleengError)
    return _error_response(exc)


def _template(path: str) -> re.Pattern[str]:
    """An OpenAPI path template as a pattern: `{name}` is one segment (the poll's id, any)."""
    parts = re.split(r"(\{[^}]+\})", path)
    pattern = "".join(".+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"{pattern}")


@functools.cache
def _routes(document: str) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    paths: dict[str, dict[str, Any]] = json.loads(document)
    return [(_template(p), frozenset(m.upper() for m in ops)) for p, ops in paths.items()]


def _allowed(request: Request) -> str:
    """Every method the API serves at this path, from its own route table (the OpenAPI
    document): Starlette's 405 names only the first route that matched the path."""
    document = json.dumps(request.app.openapi()["paths"], sort_keys=True)
    found: set[str] = set()
    for pattern, methods in _routes(document):
        if pattern.fullmatch(request.url.path):
            found |= methods
    return ", ".join(sorted(found))


def _http_error(request: Request, status: int, allowed: str = "") -> errors.CleengError:
    method, path = clip(request.method, 16), clip(request.url.path)
    if status == 404:
        message = (
            f"Entity not found: no route for {method} {path} (the API's endpoints are at /docs)"
        )
        return errors.NotFound(message=message)
    if status == 405:
        message = f"Method not allowed: {path} takes {allowed or 'no method'}, not {method}"
        return errors.MethodNotAllowed(message=message)
    error_class = _STATUS_ERRORS.get(status, errors.InvalidBody)
    return errors.InternalError() if status >= 500 else error_class()


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    allowed = ""
    if exc.status_code == 405:
        # The API's routes from its route table; a page outside it (/docs, the console, the
        # static files) by what Starlette said, and static files serve GET and HEAD.
        allowed = _allowed(request) or headers.get("Allow") or "GET, HEAD"
        headers["Allow"] = allowed
    return _error_response(_http_error(request, exc.status_code, allowed), headers=headers)


async def on_database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection is never a 500 (docs/api.md §2)."""
    log.warning("database unavailable: %s", exc)
    return _error_response(errors.ServiceUnavailable())


def install(app: FastAPI) -> None:
    app.add_exception_handler(DatabaseUnavailable, on_database_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(errors.CleengError, on_cleeng_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
