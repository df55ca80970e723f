"""The simulator's ASGI app: Apple's paths, the same under ``/sandbox`` and ``/production``, and ``/sim``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from app.simulator import control, control_limits, control_tools
from app.simulator.apple_api import build_router
from app.simulator.delivery import Notifier
from app.simulator.errors import EarlyAnswer
from app.simulator.faults import DropConnectionMiddleware
from app.simulator.middleware import CallCounter, ControlToken, PersistChanges
from app.simulator.model import Environment
from app.simulator.state import SimulatorState

DESCRIPTION = (
    "Stands in for Apple's App Store Server API: every call of Apple's app-store-server-library "
    "but Retention Messaging and Advanced Commerce, with Apple's paths, authentication, rate "
    "limits, errors and signatures (its own certificate chain). Posts App Store Server "
    "Notifications V2 and keeps each with its send attempts (Get Notification History). "
    "Control it under /sim."
)


async def _early_answer(_: Request, error: Exception) -> Response:
    assert isinstance(error, EarlyAnswer)
    return error.response


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


# The package's own copy of Swagger UI (app/static/swagger-ui), as the service's /docs uses it:
# the simulator's /docs works with no internet too.
SWAGGER_UI = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
SWAGGER_UI_URL = "/static/swagger-ui"


async def _docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="App Store simulator",
        swagger_js_url=f"{SWAGGER_UI_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI_URL}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI_URL}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


def create_app(state: SimulatorState | None = None, control_token: str | None = None) -> FastAPI:
    """The simulator, over ``state`` (a new one, with a new certificate chain, by default); with
    ``control_token``, its control API (``/sim``) needs ``Authorization: Bearer <token>``."""
    state = state if state is not None else SimulatorState()
    notifier = Notifier(state.notification_timeout)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await notifier.aclose()

    app = FastAPI(
        title="App Store simulator",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.simulator = state
    app.state.notifier = notifier
    app.state.calls = {}  # (method, route, status): count; see CallCounter
    app.add_middleware(DropConnectionMiddleware)
    if state.store is not None:
        app.add_middleware(PersistChanges, persist=state.persist)
    if control_token:
        app.add_middleware(ControlToken, token=control_token)
    app.add_middleware(CallCounter, counts=app.state.calls)
    app.add_exception_handler(EarlyAnswer, _early_answer)
    app.include_router(build_router(None))
    app.include_router(build_router(Environment.SANDBOX), prefix="/sandbox")
    app.include_router(build_router(Environment.PRODUCTION), prefix="/production")
    app.include_router(control.router)
    app.include_router(control_tools.router)
    app.include_router(control_limits.router)
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["simulator"])
    app.add_api_route("/docs", _docs, methods=["GET"], include_in_schema=False)
    app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    return app
