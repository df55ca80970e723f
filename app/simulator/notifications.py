"""App Store Server Notifications V2: a signed payload POSTed as ``{"signedPayload": "<JWS>"}``.

The decoded payload carries ``notificationType``, ``subtype``, ``notificationUUID``, ``version`` "2.0",
``signedDate`` and ``data`` (the app, the environment and, about a purchase, its signed transaction,
for subscriptions its signed renewal info and status) or, for a mass extension's summary,
``summary``. Every notification is recorded with every attempt to deliver it (Get Notification
History). A notification can be recorded as failed without being posted (``fail``), as if the
server had been unreachable.
"""

from __future__ import annotations

import uuid

from app.simulator.delivery import Notifier
from app.simulator.model import (
    App,
    DeliveryAttempt,
    Environment,
    MassExtension,
    Notice,
    NotificationRecord,
    Purchase,
    SendAttemptResult,
)
from app.simulator.payloads import signed_renewal_info, signed_transaction
from app.simulator.state import SimulatorState

BUNDLE_VERSION = "1.0"
NO_URL = "no notification URL configured"
NOT_POSTED = "not posted: recorded as failed on request"


def _envelope(notice: Notice, notification_uuid: str) -> dict[str, object]:
    payload: dict[str, object] = {"notificationType": notice.notification_type}
    if notice.subtype is not None:
        payload["subtype"] = notice.subtype
    return payload | {"notificationUUID": notification_uuid, "version": "2.0"}


def _app_data(app: App, environment: Environment) -> dict[str, object]:
    return {
        "appAppleId": app.app_apple_id,
        "bundleId": app.bundle_id,
        "bundleVersion": BUNDLE_VERSION,
        "environment": environment.value,
    }


def _purchase_data(state: SimulatorState, purchase: Purchase, now: int) -> dict[str, object]:
    data = _app_data(state.apps[purchase.bundle_id], purchase.environment)
    data["signedTransactionInfo"] = signed_transaction(state.signer, purchase, purchase.latest, now)
    if purchase.is_subscription:
        data["signedRenewalInfo"] = signed_renewal_info(state.signer, purchase, now)
        data["status"] = int(purchase.status(now))
    return data


def _summary(app: App, mass: MassExtension) -> dict[str, object]:
    summary: dict[str, object] = {
        "requestIdentifier": mass.request_identifier,
        "environment": mass.environment.value,
        "appAppleId": app.app_apple_id,
        "bundleId": app.bundle_id,
        "productId": mass.product_id,
        "succeededCount": mass.succeeded_count,
        "failedCount": mass.failed_count,
    }
    if mass.storefront_country_codes is not None:
        summary["storefrontCountryCodes"] = mass.storefront_country_codes
    return summary


def _record(
    state: SimulatorState,
    notice: Notice,
    app: App,
    environment: Environment,
    body: tuple[str, dict[str, object]],
    original_transaction_id: str | None = None,
) -> NotificationRecord:
    """Sign and record a notification; ``body`` is its ``data`` or ``summary`` key and value."""
    notification_uuid, now = str(uuid.uuid4()), state.now()
    payload = _envelope(notice, notification_uuid)
    payload |= {"signedDate": now, body[0]: body[1]}
    record = NotificationRecord(
        notification_uuid=notification_uuid,
        notice=notice,
        bundle_id=app.bundle_id,
        environment=environment,
        signed_date=now,
        signed_payload=state.signer.sign(payload),
        original_transaction_id=original_transaction_id,
    )
    state.add_notification(record)
    return record


def purchase_notification(
    state: SimulatorState, purchase: Purchase, notice: Notice
) -> NotificationRecord:
    """A notification about the purchase as it is now."""
    data = _purchase_data(state, purchase, state.now())
    app = state.apps[purchase.bundle_id]
    original = purchase.original_transaction_id
    return _record(state, notice, app, purchase.environment, ("data", data), original)


def test_notification(
    state: SimulatorState, app: App, environment: Environment
) -> NotificationRecord:
    return _record(state, Notice("TEST"), app, environment, ("data", _app_data(app, environment)))


def summary_notification(state: SimulatorState, mass: MassExtension) -> NotificationRecord:
    app = state.apps[mass.bundle_id]
    notice = Notice("RENEWAL_EXTENSION", "SUMMARY")
    return _record(state, notice, app, mass.environment, ("summary", _summary(app, mass)))


async def notify(
    state: SimulatorState,
    notifier: Notifier,
    purchase: Purchase,
    notice: Notice,
    fail: SendAttemptResult | None = None,
) -> NotificationRecord:
    """Sign a notification about the purchase as it is now, record it and deliver it once."""
    record = purchase_notification(state, purchase, notice)
    await deliver(state, notifier, record, fail)
    return record


async def deliver(
    state: SimulatorState,
    notifier: Notifier,
    record: NotificationRecord,
    fail: SendAttemptResult | None = None,
) -> DeliveryAttempt:
    """Post the record's signed payload, unchanged, to the app's current notification URL; or,
    with ``fail``, record a failed attempt without posting."""
    url, now = state.notification_url(record.bundle_id), state.now()
    if fail is not None:
        attempt = DeliveryAttempt(url, now, fail, error=NOT_POSTED)
    elif url is None:
        attempt = DeliveryAttempt(None, now, SendAttemptResult.OTHER, error=NO_URL)
    else:
        attempt = await notifier.post(url, record.signed_payload, now)
    record.attempts.append(attempt)
    return attempt
