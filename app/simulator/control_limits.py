"""Control API, part three: Apple's rate limits, globally and per app (``/sim``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.simulator.deps import State
from app.simulator.model import Environment
from app.simulator.ratelimit import APPLE_RATES, Override, RateLimits
from app.simulator.schemas import (
    AppRateLimit,
    AppRateLimitOut,
    EndpointLimit,
    RateLimitsOut,
    RateLimitsUpdate,
)

router = APIRouter(prefix="/sim", tags=["simulator"])


def _override_out(override: Override) -> AppRateLimitOut:
    return AppRateLimitOut(
        bundle_id=override.bundle_id,
        budget=override.budget,
        window_seconds=override.window_seconds,
        environment=override.environment,
        endpoint=override.endpoint,
    )


def _endpoint(limits: RateLimits, endpoint: str) -> EndpointLimit:
    def budget(environment: Environment) -> int:
        found = limits.limit("", environment, endpoint)
        return found.budget if found is not None else 0

    return EndpointLimit(
        per_second=APPLE_RATES[endpoint],
        production=budget(Environment.PRODUCTION),
        sandbox=budget(Environment.SANDBOX),
    )


def _limits_out(limits: RateLimits) -> RateLimitsOut:
    return RateLimitsOut(
        enabled=limits.enabled,
        window_seconds=limits.window_seconds,
        budget=limits.budget,
        endpoints={e: _endpoint(limits, e) for e in APPLE_RATES},
        overrides=[_override_out(o) for o in limits.overrides()],
    )


@router.get("/rate-limits", response_model_by_alias=True)
async def get_rate_limits(state: State) -> RateLimitsOut:
    """Each limited endpoint's budget per window, for an app with no budget of its own."""
    return _limits_out(state.limits)


@router.put("/rate-limits", response_model_by_alias=True)
async def set_rate_limits(body: RateLimitsUpdate, state: State) -> RateLimitsOut:
    """Change the window, every budget or whether limits apply at all; usage starts again."""
    state.limits.configure(body.window_seconds, body.budget, body.enabled)
    return _limits_out(state.limits)


@router.put("/apps/{bundle_id}/rate-limit")
async def set_app_rate_limit(bundle_id: str, body: AppRateLimit, state: State) -> AppRateLimitOut:
    """Give one app its own budget (and window), for one environment and endpoint or all; the
    app's usage starts again."""
    if bundle_id not in state.apps:
        raise HTTPException(404, f"no app {bundle_id}")
    if body.endpoint is not None and body.endpoint not in APPLE_RATES:
        raise HTTPException(422, f"endpoint is one of {', '.join(APPLE_RATES)}")
    override = Override(
        bundle_id, body.environment, body.endpoint, body.budget, body.window_seconds
    )
    state.limits.override(override)
    return _override_out(override)


@router.delete("/apps/{bundle_id}/rate-limit", status_code=204)
async def clear_app_rate_limit(bundle_id: str, state: State) -> None:
    """Back to the global budgets; the app's usage starts again."""
    if bundle_id not in state.apps:
        raise HTTPException(404, f"no app {bundle_id}")
    state.limits.forget(bundle_id)
