"""Apple's rate limits, kept by every process together (the database holds the count).

Apple limits its App Store Server API per app, environment and endpoint, stated per second and
enforced over an hour: in production 50/s for transaction info, subscription statuses, transaction
and notification history, 20/s for renewal-date extensions and app account tokens, 10/s for order
lookup and refund history, 1/s for test notifications and mass extensions; in the sandbox a tenth
of each. A 429 carries `Retry-After` as a Unix time in milliseconds.

The service spends a budget below those figures (`APPLE_BUDGET_SHARE` of them, or `APPLE_BUDGET`
calls per `APPLE_BUDGET_WINDOW` seconds for every endpoint): a window opens at the first call, as
Apple's does. Live syncs may spend all of it; background work (the reconciliation, the expiry
safety net) at most a fifth. A process leases a few calls at a time (one when the budget is small)
so that most calls cost no database round trip; what it leased and did not use is spent. A call
over the budget, or while a 429 pauses the app (on every process, until its `Retry-After`), does
not happen: `OverBudget` says when to try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from appstoreserverlibrary.models.Environment import Environment

from app.apple import repository
from app.apple.repository import Key, Window
from app.clock import Clock
from app.config import Settings
from app.db import Database

# Apple's production limits, calls per second, by our name of the endpoint.
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
# The library's operations, by the endpoint they call (unlisted: not limited by Apple).
ENDPOINTS: dict[str, str] = {
    "get_transaction_info": "transaction_info",
    "get_all_subscription_statuses": "subscription_statuses",
    "get_transaction_history": "transaction_history",
    "get_notification_history": "notification_history",
    "extend_subscription_renewal_date": "extend_renewal_date",
    "set_app_account_token": "app_account_token",
    "look_up_order_id": "order_lookup",
    "get_refund_history": "refund_history",
    "request_test_notification": "test_notification",
    "extend_renewal_date_for_all_active_subscribers": "mass_extend",
}
SANDBOX_SHARE = 0.1
BACKGROUND_SHARE = 0.2  # the reconciliation and the safety net: at most a fifth
MAX_LEASE = 10


class OverBudget(Exception):
    """No call now: the budget is spent, or Apple paused the app; try again at `until`."""

    def __init__(self, until: datetime, why: str) -> None:
        super().__init__(why)
        self.until = until


@dataclass
class Lease:
    left: int
    until: datetime  # the end of the window it was leased in


class Budget:
    """This process's side of the shared budget: its leases, and the database for the rest."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings, self.db, self.clock = settings, db, clock
        # Apple's window opens when its first call arrives, a moment after this side counted it:
        # the next window here opens a little later than the window's length, never earlier.
        seconds = settings.apple_budget_window
        self.window = timedelta(seconds=seconds)
        self.span = self.window + timedelta(seconds=min(max(0.1, seconds / 100), 5.0))
        self._leases: dict[tuple[Key, bool], Lease] = {}

    def allowance(self, endpoint: str, environment: str) -> int:
        """Calls per window for the endpoint in the environment."""
        if self.settings.apple_budget is not None:
            return self.settings.apple_budget
        share = SANDBOX_SHARE if environment == Environment.SANDBOX.value else 1.0
        rate = APPLE_RATES[endpoint] * share * self.settings.apple_budget_share
        return max(1, int(rate * self.window.total_seconds()))

    async def take(
        self, publisher_id: int, bundle_id: str, environment: str, operation: str, background: bool
    ) -> None:
        """One call of `operation` for the app, or `OverBudget`."""
        endpoint = ENDPOINTS.get(operation)
        if endpoint is None:
            return  # Apple states no limit for it
        key = Key(publisher_id, bundle_id, environment, endpoint)
        lease = self._leases.get((key, background))
        now = self.clock.now()
        if lease is None or lease.left <= 0 or now >= lease.until:
            lease = await self._lease(key, background, now)
            self._leases[(key, background)] = lease
        lease.left -= 1

    async def _lease(self, key: Key, background: bool, now: datetime) -> Lease:
        allowance = self.allowance(key.endpoint, key.environment)
        want = max(1, min(MAX_LEASE, allowance // 200))
        async with self.db.transaction() as tx:
            paused = await repository.paused_until(tx, key, now)
            if paused is not None:
                raise OverBudget(paused, "Apple asked to wait (429)")
            window = await repository.lock_window(tx, key, now)
            if window.started_at + self.span <= now:
                window = Window(now, 0, 0)
            granted = min(want, self._room(window, allowance, background))
            if granted <= 0:
                raise OverBudget(window.started_at + self.span, "Apple's budget is spent")
            window.used += granted
            window.used_background += granted if background else 0
            await repository.save_window(tx, key, window)
        return Lease(granted, window.started_at + self.window)

    @staticmethod
    def _room(window: Window, allowance: int, background: bool) -> int:
        room = allowance - window.used
        if background:
            room = min(room, int(allowance * BACKGROUND_SHARE) - window.used_background)
        return room

    async def pause(
        self, publisher_id: int, bundle_id: str, environment: str, until: datetime
    ) -> None:
        """Apple answered 429: no call for the app, on any process, until `until`."""
        key = Key(publisher_id, bundle_id, environment)
        await repository.pause(self.db, key, until)
        for leased in [k for k in self._leases if k[0].publisher_id == publisher_id]:
            if leased[0].bundle_id == bundle_id and leased[0].environment == environment:
                del self._leases[leased]
