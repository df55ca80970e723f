"""Every error answers in the envelope of SPEC §2: the handlers FastAPI calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors

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
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


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
    return _error_response(exc, exc.headers() or None)


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_class = _STATUS_ERRORS.get(exc.status_code, errors.InvalidBody)
    if exc.status_code >= 500:
        error_class = errors.InternalError
    return _error_response(error_class(), headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(errors.CleengError, on_cleeng_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
