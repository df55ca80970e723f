"""The second part of a pass: the expiry safety net. Each lapsed subscription is read again from
Apple (no transaction open), then corrected in one transaction with its webhook events, as a
notification would have; the deliveries are any worker's. One Apple keeps failing on is skipped
(marked, it is read after the others from then on); several in a row stop the pass."""

from __future__ import annotations

import contextlib
import logging

from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp
from app.apple.statuses import subscription_state
from app.apple.transactions import AppleFinal, ApplePurchase, AppleTransient, refused
from app.context import Context
from app.handlers.reconcile.fence import Fence
from app.metrics import SAFETY_NET_CHECKED, SAFETY_NET_CORRECTED, SAFETY_NET_SKIPPED
from app.reconcile import service
from app.reconcile.service import Apps, Tally
from app.subscriptions.model import Subscription
from app.webhooks import outbox

log = logging.getLogger(__name__)

AppKey = tuple[int, str]


class _Apps:
    """The pass's apps (those whose key opens), and those set aside for the rest of it (Apple
    refused their key, or their rate limit was reached)."""

    def __init__(self, apps: Apps) -> None:
        self.apps = apps
        self.set_aside: set[AppKey] = set()

    def to_ask(self, subscription: Subscription) -> list[AppleApp]:
        apps = service.apps_to_ask(self.apps.of(subscription.publisher_id), subscription)
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


async def _skip(
    context: Context, fence: Fence, subscription: Subscription, tally: Tally, exc: AppleTransient
) -> None:
    """Apple failed on it beyond the retries: marked, so that it is read after the others from
    now on; the pass goes on, unless Apple failed so several times in a row."""
    async with context.db.transaction() as tx:
        await fence.check(tx)
        await service.mark_failed(tx, subscription, context.clock.now())
    SAFETY_NET_SKIPPED.inc()
    fields = _fields(subscription, error=str(exc))
    log.warning("the safety net skipped a subscription Apple failed on", extra={"fields": fields})
    tally.failed(f"safety net, purchase {subscription.original_transaction_id}", exc)


async def _check(
    context: Context, fence: Fence, subscription: Subscription, apps: _Apps, tally: Tally
) -> None:
    asked = apps.to_ask(subscription)
    if not asked:
        return  # no app to ask (its key cannot be opened, or its app set aside in this pass)
    try:
        facts: ApplePurchase | None = await _ask(context, subscription, asked, tally)
    except AppleTransient as exc:
        await _skip(context, fence, subscription, tally, exc)
        return
    except OverBudget as exc:
        apps.set_apart(asked)
        tally.stop(f"safety net, {', '.join(a.bundle_id for a in asked)}", exc)
        return
    except AppleFinal as exc:
        tally.answered()
        if refused(exc):
            apps.set_apart(asked)
            tally.stop(f"safety net, {', '.join(a.bundle_id for a in asked)}", exc)
            return
        fields = _fields(subscription, error=str(exc))
        log.warning("Apple does not tell about a lapsed subscription", extra={"fields": fields})
        facts = None
    else:
        tally.answered()
    tally.checked += 1
    SAFETY_NET_CHECKED.inc()
    if await _correct(context, fence, subscription, facts):
        tally.corrected += 1
        SAFETY_NET_CORRECTED.inc()


async def safety_net(context: Context, fence: Fence, tally: Tally, pass_apps: Apps) -> None:
    """Read again, up to the pass's bound on candidates (then `tally.more`), every subscription
    still stored active whose access ended more than ten minutes ago with no word from Apple
    since, and an app to ask: oldest expiry first, those Apple failed on last."""
    apps, seen = _Apps(pass_apps), 0
    found = service.candidates(context.db, context.clock.now())
    async with contextlib.aclosing(found) as candidates:
        async for subscription in candidates:
            if seen >= service.SAFETY_NET_LIMIT:
                tally.more = True
                return
            seen += 1
            await _check(context, fence, subscription, apps, tally)
