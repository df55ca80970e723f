"""create_app(): routers, error handlers, the lifespan that owns the engine and the worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.admin.router import router as admin_router
from app.clock import Clock
from app.config import Settings, get_settings
from app.context import Context, build_context
from app.db import is_database_outage
from app.deps import Ctx, Session
from app.entitlements.router import router as entitlements_router
from app.logs import configure_logging
from app.metrics import RequestMetrics
from app.metrics import render as render_metrics
from app.middleware import BodyLimit, ErrorBoundary, RequestContext
from app.notifications.router import router as notifications_router
from app.openapi import PUBLIC, error_responses
from app.openapi import install as install_openapi
from app.purchases.router import router as purchases_router
from app.runtime import Runtime
from app.webhooks.router import deliveries_router as webhook_deliveries_router
from app.webhooks.router import router as webhooks_router

log = logging.getLogger(__name__)

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
    return _error_response(exc)


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_class = _STATUS_ERRORS.get(exc.status_code, errors.InvalidBody)
    if exc.status_code >= 500:
        error_class = errors.InternalError
    return _error_response(error_class(), headers=exc.headers)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    context: Context = app.state.context_factory()
    app.state.context = context
    runtime = Runtime(context)
    await runtime.start()
    try:
        yield
    finally:
        await runtime.stop()
        await context.close()


def _operations(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], operation_id="health")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        operation_id="ready",
        responses=error_responses(common=PUBLIC),
    )
    async def readyz(context: Ctx) -> JSONResponse:
        try:
            async with context.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            await context.pg.fetchval("SELECT 1")  # the pool that auth and register use
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            return _error_response(errors.ServiceUnavailable())
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"], operation_id="metrics", response_class=Response)
    async def metrics(session: Session, context: Ctx) -> Response:
        body, content_type = await render_metrics(session, context.clock.now().timestamp())
        return Response(body, media_type=content_type)

    @app.get("/.well-known/jwks.json", tags=["auth"], operation_id="jwks")
    async def jwks(context: Ctx) -> dict[str, list[dict[str, str]]]:
        return {"keys": context.signing_key.jwks}


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    app = FastAPI(
        title="storekit-sync",
        version="0.1.0",
        summary="Apple StoreKit 2 purchases, verified and granted, behind Cleeng's In-App API.",
        lifespan=_lifespan,
    )
    app.state.context_factory = lambda: build_context(settings, clock)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(errors.CleengError, on_cleeng_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(ErrorBoundary)
    app.add_middleware(RequestContext)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestMetrics)
    install_openapi(app)
    _operations(app)
    app.include_router(admin_router)
    app.include_router(webhooks_router)
    app.include_router(webhook_deliveries_router)
    app.include_router(purchases_router)
    app.include_router(entitlements_router)
    app.include_router(notifications_router)
    return app
