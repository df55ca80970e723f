"""The second part of a pass: the expiry safety net. Each lapsed subscription is read again from
Apple (no transaction open), then corrected in one transaction with its webhook events, as a
notification would have; the deliveries are any worker's."""

from __future__ import annotations

import logging
from datetime import datetime

from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp
from app.apple.statuses import subscription_state
from app.apple.transactions import AppleFinal, ApplePurchase, refused
from app.context import Context
from app.handlers.reconcile.fence import Fence
from app.metrics import SAFETY_NET_CHECKED, SAFETY_NET_CORRECTED
from app.reconcile import service
from app.reconcile.service import Tally
from app.subscriptions.model import Subscription
from app.webhooks import outbox

log = logging.getLogger(__name__)

AppKey = tuple[int, str]


class _Apps:
    """The apps of each publisher met in this pass, and those set aside for the rest of it
    (Apple refused their key, or their rate limit was reached)."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self._of: dict[int, list[AppleApp]] = {}
        self.set_aside: set[AppKey] = set()

    async def to_ask(self, subscription: Subscription) -> list[AppleApp]:
        publisher_id = subscription.publisher_id
        if publisher_id not in self._of:
            db, box = self.context.db, self.context.secrets
            self._of[publisher_id] = await service.publisher_apps(db, box, publisher_id)
        apps = service.apps_to_ask(self._of[publisher_id], subscription)
        return [a for a in apps if (a.publisher_id, a.bundle_id) not in self.set_aside]

    def set_apart(self, apps: list[AppleApp]) -> None:
        self.set_aside.update((a.publisher_id, a.bundle_id) for a in apps)


def _fields(subscription: Subscription, **more: object) -> dict[str, object]:
    return {
        "subscriptionId": subscription.id,
        "publisherId": subscription.publisher_id,
        "originalTransactionId": subscription.original_transaction_id,
        **more,
    }


async def _ask(
    context: Context, subscription: Subscription, apps: list[AppleApp], tally: Tally
) -> ApplePurchase:
    async def ask() -> ApplePurchase:
        s = subscription
        return await subscription_state(
            context.apple, apps, s.environment, s.original_transaction_id
        )

    return await service.with_retries(ask, tally)


async def _correct(
    context: Context, fence: Fence, subscription: Subscription, facts: ApplePurchase | None
) -> bool:
    """One step: Apple's state applied (or, with none, the subscription marked read); whether
    it changed anything."""
    now, publisher_id = context.clock.now(), subscription.publisher_id
    async with context.db.transaction() as tx:
        await fence.check(tx)
        if facts is None:
            await service.mark_read(tx, subscription, now)
            return False
        change = await service.correct(tx, subscription, facts, now)
        await outbox.write(tx, publisher_id, change.events, now)
    if change.events:
        context.waker.poke()
        fields = _fields(subscription, outcome=change.outcome)
        log.info("the expiry safety net corrected a subscription", extra={"fields": fields})
    return bool(change.events)


async def _check(
    context: Context, fence: Fence, subscription: Subscription, apps: _Apps, tally: Tally
) -> None:
    asked = await apps.to_ask(subscription)
    if not asked:
        return  # no app to ask (the integration is off, or its apps set aside in this pass)
    try:
        facts: ApplePurchase | None = await _ask(context, subscription, asked, tally)
    except OverBudget as exc:
        apps.set_apart(asked)
        tally.stop(f"safety net, {', '.join(a.bundle_id for a in asked)}", exc)
        return
    except AppleFinal as exc:
        if refused(exc):
            apps.set_apart(asked)
            tally.stop(f"safety net, {', '.join(a.bundle_id for a in asked)}", exc)
            return
        fields = _fields(subscription, error=str(exc))
        log.warning("Apple does not tell about a lapsed subscription", extra={"fields": fields})
        facts = None
    tally.checked += 1
    SAFETY_NET_CHECKED.inc()
    if await _correct(context, fence, subscription, facts):
        tally.corrected += 1
        SAFETY_NET_CORRECTED.inc()


async def safety_net(context: Context, fence: Fence, tally: Tally) -> None:
    """Read again, oldest expiry first, up to the pass's bound (then `tally.more`), every
    subscription still stored active whose access ended more than ten minutes ago with no
    word from Apple since."""
    apps, now = _Apps(context), context.clock.now()
    after: tuple[datetime, int] | None = None
    while batch := await service.lapsed(context.db, now, after):
        for subscription in batch:
            if tally.checked >= service.SAFETY_NET_LIMIT:
                tally.more = True
                return
            assert subscription.expires_at is not None and subscription.id is not None
            after = (subscription.expires_at, subscription.id)
            await _check(context, fence, subscription, apps, tally)
