"""Apple's rate limits: per app, environment and endpoint, stated per second, enforced per hour.

Apple's production figures per second are below; the sandbox's are a tenth. A budget is the rate
times the window (an hour: 50/s is 180,000 calls an hour). A window opens at the first call Apple
counts and closes a window's length later; over the budget, a call is answered 429 4290000 with
``Retry-After`` = when the window closes, in Unix milliseconds. Apple counts calls that
authenticated (a 401 is not counted) and are not themselves refused for the rate; endpoints it
states no limit for are not limited. A test can change the window, every budget (``budget``), or
one app's budget (per environment, per endpoint or for all).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.simulator.model import Environment

# Apple's production limits, calls per second; the sandbox has a tenth of each.
APPLE_RATES: dict[str, float] = {
    "transaction_info": 50,
    "subscription_statuses": 50,
    "transaction_history": 50,
    "notification_history": 50,
    "extend_renewal_date": 20,
    "app_account_token": 20,
    "order_lookup": 10,
    "refund_history": 10,
    "test_notification": 1,
    "mass_extend": 1,
}
SANDBOX_SHARE = 0.1
HOUR_SECONDS = 3600.0

OverrideKey = tuple[str, Environment | None, str | None]


@dataclass(frozen=True)
class Limit:
    budget: int
    window_ms: int


@dataclass(frozen=True)
class Override:
    """One app's budget, for one environment and endpoint or all (``None``)."""

    bundle_id: str
    environment: Environment | None
    endpoint: str | None
    budget: int
    window_seconds: float | None


def apple_budget(endpoint: str, environment: Environment, window_seconds: float) -> int:
    """Apple's rate for the endpoint, over the window (at least one call)."""
    share = SANDBOX_SHARE if environment is Environment.SANDBOX else 1.0
    return max(1, int(APPLE_RATES[endpoint] * window_seconds * share))


class RateLimits:
    """What is allowed (``window_seconds``, ``budget`` for every limited endpoint instead of
    Apple's figures, per-app overrides) and what was used in each open window."""

    def __init__(
        self, window_seconds: float = HOUR_SECONDS, budget: int | None = None, enabled: bool = True
    ) -> None:
        self.window_seconds = window_seconds
        self.budget = budget
        self.enabled = enabled
        self._overrides: dict[OverrideKey, Override] = {}
        self._windows: dict[tuple[str, Environment, str], tuple[int, int]] = {}

    def configure(
        self, window_seconds: float | None, budget: int | None, enabled: bool | None
    ) -> None:
        self.window_seconds = window_seconds or self.window_seconds
        self.budget = budget
        self.enabled = self.enabled if enabled is None else enabled
        self._windows.clear()

    def overrides(self) -> list[Override]:
        return list(self._overrides.values())

    def override(self, override: Override) -> None:
        key = (override.bundle_id, override.environment, override.endpoint)
        self._overrides[key] = override
        self.forget(override.bundle_id, keep_overrides=True)

    def forget(self, bundle_id: str, keep_overrides: bool = False) -> None:
        """Forget the app's usage (and, unless ``keep_overrides``, its own budgets)."""
        self._windows = {k: v for k, v in self._windows.items() if k[0] != bundle_id}
        if not keep_overrides:
            self._overrides = {k: v for k, v in self._overrides.items() if k[0] != bundle_id}

    def clear(self) -> None:
        self._overrides.clear()
        self._windows.clear()

    def _override(self, bundle_id: str, environment: Environment, endpoint: str) -> Override | None:
        for key in (
            (bundle_id, environment, endpoint),
            (bundle_id, environment, None),
            (bundle_id, None, endpoint),
            (bundle_id, None, None),
        ):
            if key in self._overrides:
                return self._overrides[key]
        return None

    def limit(self, bundle_id: str, environment: Environment, endpoint: str) -> Limit | None:
        """The budget and window of the app's calls to ``endpoint``; ``None``: not limited."""
        if not self.enabled or endpoint not in APPLE_RATES:
            return None
        found = self._override(bundle_id, environment, endpoint)
        seconds = (found.window_seconds if found else None) or self.window_seconds
        if found is not None:
            return Limit(found.budget, int(seconds * 1000))
        budget = (
            self.budget if self.budget is not None else apple_budget(endpoint, environment, seconds)
        )
        return Limit(budget, int(seconds * 1000))

    def admit(
        self, bundle_id: str, environment: Environment, endpoint: str, now: int
    ) -> int | None:
        """Count the call; ``None`` if allowed, else when its window closes (Unix ms)."""
        limit = self.limit(bundle_id, environment, endpoint)
        if limit is None:
            return None
        key = (bundle_id, environment, endpoint)
        start, used = self._windows.get(key, (now, 0))
        if now >= start + limit.window_ms:
            start, used = now, 0
        if used >= limit.budget:
            return start + limit.window_ms
        self._windows[key] = (start, used + 1)
        return None
