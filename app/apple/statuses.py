"""Apple's current word on one subscription, read again (the reconciliation's expiry safety net,
docs/api.md §6): Get All Subscription Statuses asked of each app that may know the purchase, within the
background share of Apple's budget.

The answer is shaped as the facts a notification carries (`ApplePurchase`, dated by the newest
signature in it), so the shared rules apply it as they apply a notification.
"""

from __future__ import annotations

from collections.abc import Sequence

from appstoreserverlibrary.models.Environment import Environment

from app.apple.gateway import AppleApp, AppleGateway
from app.apple.transactions import (
    NOT_FOUND,
    AppleFinal,
    ApplePurchase,
    refused,
    subscription_status,
)


def environment_of(app: AppleApp, name: str) -> Environment | None:
    """The app's environment of that name, if the app is asked in it."""
    return next((e for e in app.environments() if e.value == name), None)


async def subscription_state(
    gateway: AppleGateway, apps: Sequence[AppleApp], environment: str, original: str
) -> ApplePurchase:
    """The purchase's state as Apple holds it now, asked of each app in turn in the purchase's
    environment. An app Apple refuses (401), does not know the purchase in (4040010) or whose
    statuses do not hold it passes it on; a transient failure (or `OverBudget`) raises at once.
    When no app knew it: the last refusal or not-found, as `AppleFinal`."""
    last = AppleFinal(NOT_FOUND, f"no app of the publisher is asked in {environment}")
    for app in apps:
        chosen = environment_of(app, environment)
        if chosen is None:
            continue
        try:
            state = await subscription_status(gateway, app, chosen, original, background=True)
        except AppleFinal as exc:
            if exc.result != NOT_FOUND and not refused(exc):
                raise
            last = exc
            continue
        if state is not None:
            return state
        last = AppleFinal(NOT_FOUND, f"the statuses of {app.bundle_id} do not hold it")
    raise last
