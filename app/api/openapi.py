"""The error codes each endpoint can answer, for the OpenAPI document (SPEC §8)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from app import errors as e

# Every authenticated JSON endpoint can answer these.
COMMON: tuple[type[e.CleengError], ...] = (
    e.InvalidHeaders,
    e.MissingCredentials,
    e.InvalidCredentials,
    e.Forbidden,
    e.PayloadTooLarge,
    e.InternalError,
    e.ServiceUnavailable,
)
PUBLIC: tuple[type[e.CleengError], ...] = (e.InvalidHeaders, e.InternalError, e.ServiceUnavailable)


def _example(error: type[e.CleengError]) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message, "details": []}
    if error is e.InvalidBody:
        body["details"] = [{"field": "transactionId", "problem": "String should match pattern"}]
    return {"summary": error.code, "value": body}


def error_responses(
    *specific: type[e.CleengError], common: tuple[type[e.CleengError], ...] = COMMON
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: one entry per HTTP status, an example per code."""
    by_status: dict[int, list[type[e.CleengError]]] = defaultdict(list)
    for error in (*specific, *common):
        if error not in by_status[error.status]:
            by_status[error.status].append(error)
    return {
        status: {
            "model": e.ErrorBody,
            "description": ", ".join(f"{x.code} {x.message}" for x in listed),
            "content": {"application/json": {"examples": {x.code: _example(x) for x in listed}}},
        }
        for status, listed in sorted(by_status.items())
    }


TAGS = [
    {
        "name": "storekit2",
        "description": "Register, transfer and poll StoreKit 2 purchases (Cleeng's In-App API).",
    },
    {"name": "entitlements", "description": "Customers' access and the publisher's subscriptions."},
    {"name": "webhooks", "description": "Webhook subscriptions and the delivery log."},
    {
        "name": "admin",
        "description": "Provisioning by the operator (X-Admin-Token) or the publisher itself.",
    },
    {"name": "apple", "description": "App Store Server Notifications V2, posted by Apple."},
    {"name": "auth", "description": "Keys for verifying customer JWTs."},
    {"name": "operations", "description": "Health, readiness and Prometheus metrics."},
]


def _drop_default_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 "Validation Error" on every route with parameters; this service
    answers those with 400 REQ0001/REQ0003/REQ0004 instead, so the default entry would mislead."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install(app: Any) -> None:
    """Serve the cleaned-up document at /openapi.json."""
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
                tags=TAGS,
            )
            _drop_default_validation_errors(document)
            app.openapi_schema = document
        return dict(app.openapi_schema)

    app.openapi = build
