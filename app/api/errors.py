"""Every error answers in the envelope of SPEC §2: the handlers FastAPI calls."""

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
_STATUS_ERRORS: dict[int, type[errors.CleengError]] = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    401: errors.MissingCredentials,
}


def _error_response(
    error: errors.CleengError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    merged = {**error.headers(), **(headers or {})}
    return JSONResponse(error.body(), status_code=error.status, headers=merged)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or str(loc[0])


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    where = str(problems[0]["loc"][0]) if problems and problems[0]["loc"] else "body"
    error_class = _LOCATION_ERRORS.get(where, errors.InvalidBody)
    details = [
        errors.ErrorDetail(field=_field_name(tuple(p["loc"])), problem=p["msg"]) for p in problems
    ]
    return _error_response(error_class(details))


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


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_class = _STATUS_ERRORS.get(exc.status_code, errors.InvalidBody)
    if exc.status_code >= 500:
        error_class = errors.InternalError
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request)
    return _error_response(error_class(), headers=headers)


async def on_database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection is never a 500 (SPEC §2)."""
    log.warning("database unavailable: %s", exc)
    return _error_response(errors.ServiceUnavailable())


def install(app: FastAPI) -> None:
    app.add_exception_handler(DatabaseUnavailable, on_database_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(errors.CleengError, on_cleeng_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
