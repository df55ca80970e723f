"""Apple's App Store Server API paths, with Apple's answers, authentication, limits and errors.

Every call of Apple's ``app-store-server-library`` but its Retention Messaging and Advanced
Commerce ones: see ``api_transactions`` (reading transactions), ``api_updates`` (app account
token, consumption, finishing), ``api_notifications`` (notification history, test notifications)
and ``api_extensions`` (renewal-date extensions); ``calls`` has what they share: a call is
authenticated first (401, empty body), then counted against its rate limit (429), then injected
faults apply, then the request is checked and answered.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.simulator import api_extensions, api_notifications, api_transactions, api_updates
from app.simulator.calls import TAG
from app.simulator.model import Environment

MODULES = (api_transactions, api_updates, api_notifications, api_extensions)


def build_router(environment: Environment | None) -> APIRouter:
    """The Apple paths, for every environment (``None``) or only one."""
    router = APIRouter(tags=[TAG])
    for module in MODULES:
        module.add_routes(router, environment)
    return router
