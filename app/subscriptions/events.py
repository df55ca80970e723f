"""Webhook events: what changed, and the `data` docs/api.md §5 gives each topic. Dates ISO-8601 UTC.

Rules return events; the transaction that made the change writes them (`app.webhooks.outbox`),
in the order they were returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.enums import Topic
from app.subscriptions.access import access_end, is_active
from app.subscriptions.model import Subscription

PAYMENT_GATEWAY = "apple"


@dataclass(frozen=True)
class Event:
    """One event for the publisher's webhooks; `synchronization_id` names the sync that caused
    it (None for a notification's)."""

    topic: Topic
    data: dict[str, Any]
    synchronization_id: str | None = None


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def subscription_event(
    topic: Topic, subscription: Subscription, now: datetime, **extra: Any
) -> Event:
    """subscriptionCreated, …Terminated (with `reason`), …Renewed, …Expired, …AutoRenewChanged."""
    data = {
        "subscriptionId": subscription.id,
        "offerId": subscription.offer_id,
        "customerId": subscription.customer_id,
        "active": is_active(subscription, now),
        "expirationDate": iso(access_end(subscription)),
        "paymentGateway": PAYMENT_GATEWAY,
        **extra,
    }
    return Event(topic, data)
