"""Operations (docs/api.md §8): health, readiness, Prometheus metrics, the customer-JWT keys."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import errors
from app.api.auth import MetricsScraper
from app.api.deps import Ctx
from app.api.openapi import PUBLIC, error_responses
from app.api.routes import gauges
from app.db import is_database_outage

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/", operation_id="index", summary="Where to start: the docs and the console")
async def index() -> dict[str, str]:
    """A pointer for whoever opens the service's address: the API's interactive reference, its
    OpenAPI document and the operator console."""
    return {
        "service": "storekit-sync",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "console": "/console",
    }


@router.get("/healthz", operation_id="health")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", operation_id="ready", responses=error_responses(common=PUBLIC))
async def readyz(context: Ctx) -> JSONResponse:
    try:
        await context.db.ping()
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        error = errors.ServiceUnavailable()
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers())
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses=error_responses(errors.MissingCredentials, errors.InvalidCredentials, common=PUBLIC),
)
async def metrics(_: MetricsScraper, context: Ctx) -> Response:
    """Prometheus text. With METRICS_TOKEN set, `Authorization: Bearer <METRICS_TOKEN>`. The
    database's gauges are read at most every 5 seconds, whatever the scrape rate; while the
    database is unreachable they keep their last values and the process's own metrics still
    answer."""
    try:
        await context.gauges.run(lambda: gauges.refresh(context.db, context.clock.now()))
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        log.warning("database gauges not refreshed: %s", type(exc).__name__)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json", tags=["auth"], operation_id="jwks")
async def jwks(context: Ctx) -> dict[str, list[dict[str, str]]]:
    return {"keys": context.signing_key.jwks}
