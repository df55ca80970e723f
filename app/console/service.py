"""The console's actions, through the services that do them for the API: a delivery replayed, a
purchase synchronized again as its publisher would, a test notification asked of Apple."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.callers import Caller, CallerKind
from app.console import repository
from app.context import Context
from app.db import Database, Executor, Row
from app.enums import SubscriptionStatus
from app.notifications import probe
from app.purchases import service as purchases
from app.purchases.schemas import PurchaseRequest
from app.webhooks import service as webhooks


@dataclass(frozen=True)
class Resync:
    """What a re-sync registers: the purchase's last transaction, for its customer, in its app
    (when known)."""

    publisher_id: int
    original: str
    customer_id: int
    transaction_id: str
    bundle_id: str | None
    because: str  # where they come from, as the confirmation says it


def _current(subscriptions: list[Row]) -> Row | None:
    held = [b for b in subscriptions if b["status"] != SubscriptionStatus.TERMINATED]
    return held[0] if held else (subscriptions[0] if subscriptions else None)


async def resync_target(db: Executor, publisher_id: int, original: str) -> Resync | None:
    """The owner's subscription's latest transaction; without a subscription, the last sync's
    transaction and customer; None when the purchase is unknown."""
    subscription = _current(await repository.purchase_subscriptions(db, publisher_id, original))
    if subscription is not None:
        return Resync(
            publisher_id,
            original,
            subscription["customer_id"],
            subscription["latest_transaction_id"],
            subscription["bundle_id"],
            f"the latest transaction of subscription {subscription['id']}",
        )
    syncs = await repository.purchase_syncs(db, publisher_id, original)
    if not syncs:
        return None
    last = syncs[0]
    return Resync(
        publisher_id,
        original,
        last["customer_id"],
        last["transaction_id"],
        last["bundle_id"],
        f"the transaction of the last sync, {last['id']}",
    )


async def resync(db: Database, target: Resync, now: datetime) -> str:
    """A register of the purchase's last transaction for its customer, as its publisher would
    send it; the new sync's id. Raises what a register raises (409 while one runs, …)."""
    caller = Caller(CallerKind.PUBLISHER, publisher_id=target.publisher_id)
    request = {"cleengCustomerId": target.customer_id, "transactionId": target.transaction_id}
    if target.bundle_id is not None:
        request["bundleId"] = target.bundle_id
    body = PurchaseRequest.model_validate(request)
    return await purchases.register(db, caller, body, None, now)


async def replay(tx: Executor, publisher_id: int, delivery_id: int, now: datetime) -> Row:
    """The delivery, due again now on a fresh schedule (the deliveries API's replay)."""
    return await webhooks.replay_delivery(tx, publisher_id, delivery_id, now)


async def request_test(context: Context, publisher_id: int, bundle_id: str | None) -> str:
    """Apple asked to post a TEST notification for the app (the oldest when None): its token.
    Raises what the API's request raises (no active app, Apple's refusal, Apple unavailable)."""
    c = context
    return await probe.request_probe(
        c.db, c.apple, c.secrets, publisher_id, bundle_id, c.clock.now()
    )


async def test_status(context: Context, publisher_id: int, token: str) -> probe.ProbeStatus:
    """Apple's attempts to post the test notification, and when this service received it."""
    c = context
    return await probe.probe_status(c.db, c.apple, c.secrets, publisher_id, token, c.clock.now())
