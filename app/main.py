"""create_app(): routers, error handlers, middleware, the lifespan that runs the service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from app.api import errors as error_handlers
from app.api.auth import SECURITY
from app.api.middleware import BodyLimit, ErrorBoundary, RequestContext, RequestMetrics
from app.api.openapi import install as install_openapi
from app.api.openapi import install_docs
from app.api.routes import admin, entitlements, notifications, operations, purchases, webhooks
from app.clock import Clock
from app.config import Settings, get_settings
from app.console.router import router as console
from app.jobs.worker import Foreground
from app.logs import configure_logging
from app.runtime import Runtime

DESCRIPTION = """\
A mobile backend registers a StoreKit 2 purchase (`POST /storekit2/purchases`) and gets a `202`
with a `synchronizationId` at once; the service verifies the transaction with Apple's App Store
Server API, writes the customer's entitlement, and tells the publisher through signed webhooks.

**Credentials** (the *Authorize* button): a publisher token (`X-Publisher-Token`), a customer JWT
(`Authorization: Bearer`), or the operator's admin token (`X-Admin-Token`); each operation says
which it takes. **Errors** answer `{"code", "message", "details"}`; each operation lists the codes
it can answer. The project's `docs/api.md` describes the webhooks, the settings and the command
line as well.
"""


def _lifespan(
    settings: Settings, clock: Clock | None, foreground: Foreground
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime.started(settings, clock, foreground) as runtime:
            app.state.context = runtime.context
            yield

    return lifespan


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    foreground = Foreground()  # requests in flight, counted by RequestMetrics, read by the worker
    app = FastAPI(
        title="storekit-sync",
        version="0.1.0",
        summary="Apple StoreKit 2 purchases, verified and granted, behind Cleeng's In-App API.",
        description=DESCRIPTION,
        lifespan=_lifespan(settings, clock, foreground),
        docs_url=None,  # served from the package's own Swagger UI, below
        redoc_url=None,
    )
    error_handlers.install(app)
    app.add_middleware(ErrorBoundary)
    app.add_middleware(RequestContext)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestMetrics, foreground=foreground)
    install_openapi(app, SECURITY)
    install_docs(app)
    for router in (
        operations.router,
        admin.router,
        webhooks.router,
        webhooks.deliveries_router,
        purchases.router,
        entitlements.router,
        notifications.router,
        console,
    ):
        app.include_router(router)
    return app
