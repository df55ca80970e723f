"""Apple's App Store Server API paths, with Apple's answers, authentication, limits and errors.

See ``api_transactions`` (reading transactions), ``api_updates`` (app account token,
consumption, finishing) and ``api_notifications`` (notification history, test notifications);
``calls`` has what they share: a call is authenticated first (401, empty body), then injected
faults apply, then the request is checked and answered.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.simulator import api_notifications, api_transactions, api_updates
from app.simulator.calls import TAG
from app.simulator.model import Environment

MODULES = (api_transactions, api_updates, api_notifications)


def build_router(environment: Environment | None) -> APIRouter:
    """The Apple paths, for every environment (``None``) or only one."""
    router = APIRouter(tags=[TAG])
    for module in MODULES:
        module.add_routes(router, environment)
    return router
