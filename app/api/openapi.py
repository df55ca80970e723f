"""The error codes each endpoint can answer, for the OpenAPI document (docs/api.md §8)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.staticfiles import StaticFiles

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


# The credentials (app/api/auth.py says which each endpoint accepts).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "publisherToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Publisher-Token",
        "description": "A publisher's token (`skp_…`), from `POST /admin/publishers` or"
        " `POST /admin/publishers/{publisherId}/tokens`.",
    },
    "customerJwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A customer JWT (RS256, 15 minutes by default), from"
        " `POST /admin/publishers/{publisherId}/customers/{customerId}/tokens`; its key is at"
        " `/.well-known/jwks.json`.",
    },
    "adminToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-Token",
        "description": "The operator's token: the `ADMIN_TOKEN` setting.",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`METRICS_TOKEN`, when it is set; `/metrics` is open otherwise.",
    },
}
CREDENTIAL_HEADERS = frozenset({"x-admin-token", "x-publisher-token", "authorization"})
MAX_INTEGER = 2**63 - 1  # the largest id: FastAPI's OpenAPI model turns it into a float


def _requirements(
    dependant: Any, security: Mapping[Callable[..., Any], list[dict[str, list[str]]]]
) -> list[dict[str, list[str]]] | None:
    for dependency in dependant.dependencies:
        found = security.get(dependency.call)
        if found is None:
            found = _requirements(dependency, security)
        if found is not None:
            return found
    return None


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps an included router whole,
    as an `_IncludedRouter` holding the original)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += _api_routes(list(included.routes))
    return found


def _attach_security(
    document: dict[str, Any],
    routes: list[Any],
    security: Mapping[Callable[..., Any], list[dict[str, list[str]]]],
) -> None:
    """Each operation names the credentials it takes (Swagger UI's Authorize fills them in),
    instead of listing the credential headers as parameters."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    required = {
        route.operation_id: _requirements(route.dependant, security)
        for route in _api_routes(routes)
        if route.operation_id
    }
    for path in document["paths"].values():
        for operation in path.values():
            parameters = [
                p
                for p in operation.get("parameters", [])
                if not (p["in"] == "header" and p["name"].lower() in CREDENTIAL_HEADERS)
            ]
            if parameters:
                operation["parameters"] = parameters
            else:
                operation.pop("parameters", None)
            if (needed := required.get(operation.get("operationId"))) is not None:
                operation["security"] = needed


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return MAX_INTEGER if value >= MAX_INTEGER else int(value)
    return value


def _integer_bounds(node: Any) -> None:
    """Integer bounds as integers (FastAPI's OpenAPI model writes them as floats: 1.0,
    9.223372036854776e+18)."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if key in node:
                    node[key] = _integral(node[key])
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)


def install(
    app: Any, security: Mapping[Callable[..., Any], list[dict[str, list[str]]]] | None = None
) -> None:
    """Serve the cleaned-up document at /openapi.json."""
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=TAGS,
            )
            _drop_default_validation_errors(document)
            _attach_security(document, app.routes, security or {})
            _integer_bounds(document)
            app.openapi_schema = document
        return dict(app.openapi_schema)

    app.openapi = build


# Swagger UI's files, in the package (app/static/swagger-ui/README.md says which release).
SWAGGER_UI = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
SWAGGER_UI_URL = "/static/swagger-ui"


def install_docs(app: Any) -> None:
    """/docs from the service's own copy of Swagger UI: it works with no internet."""
    app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    async def docs(request: Request) -> HTMLResponse:
        # Behind a proxy that mounts the service under a prefix (ASGI's root_path), the page's
        # files and the document are found under that prefix.
        root = str(request.scope.get("root_path", "")).rstrip("/")
        files = f"{root}{SWAGGER_UI_URL}"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: API reference",
            swagger_js_url=f"{files}/swagger-ui-bundle.js",
            swagger_css_url=f"{files}/swagger-ui.css",
            swagger_favicon_url=f"{files}/favicon-32x32.png",
            # No persistAuthorization: the tokens typed into Authorize would outlive the tab in
            # localStorage, on the origin the console shares.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
