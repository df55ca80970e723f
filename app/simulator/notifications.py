"""App Store Server Notifications V2: a signed payload POSTed as ``{"signedPayload": "<JWS>"}``.

The decoded payload carries ``notificationType``, ``subtype``, ``notificationUUID``, ``version`` "2.0",
``signedDate`` and ``data`` with the app, the environment, the signed transaction and, for
subscriptions, the signed renewal info and the status. Every delivery attempt is recorded.
"""

from __future__ import annotations

import uuid

import httpx

from app.simulator.model import DeliveryAttempt, Notice, NotificationRecord, Purchase
from app.simulator.payloads import signed_renewal_info, signed_transaction
from app.simulator.state import SimulatorState

BUNDLE_VERSION = "1.0"
NO_URL = "no notification URL configured"


class Notifier:
    """Posts notifications with one shared HTTP client, made on first use."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, url: str, signed_payload: str, at: int) -> DeliveryAttempt:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._client.post(url, json={"signedPayload": signed_payload})
        except httpx.HTTPError as error:
            return DeliveryAttempt(url=url, at=at, error=f"{type(error).__name__}: {error}")
        return DeliveryAttempt(url=url, at=at, status_code=response.status_code)


def notification_payload(
    state: SimulatorState, purchase: Purchase, notice: Notice, notification_uuid: str
) -> dict[str, object]:
    payload: dict[str, object] = {"notificationType": notice.notification_type}
    if notice.subtype is not None:
        payload["subtype"] = notice.subtype
    payload |= {
        "notificationUUID": notification_uuid,
        "version": "2.0",
        "signedDate": state.now(),
        "data": _data(state, purchase),
    }
    return payload


def _data(state: SimulatorState, purchase: Purchase) -> dict[str, object]:
    app = state.apps[purchase.bundle_id]
    data: dict[str, object] = {
        "appAppleId": app.app_apple_id,
        "bundleId": purchase.bundle_id,
        "bundleVersion": BUNDLE_VERSION,
        "environment": purchase.environment.value,
        "signedTransactionInfo": signed_transaction(
            state.signer, purchase, purchase.latest, state.now()
        ),
    }
    if purchase.is_subscription:
        data["signedRenewalInfo"] = signed_renewal_info(state.signer, purchase, state.now())
        data["status"] = int(purchase.status(state.now()))
    return data


async def notify(
    state: SimulatorState, notifier: Notifier, purchase: Purchase, notice: Notice
) -> NotificationRecord:
    """Sign a notification about the purchase as it is now, record it and deliver it once."""
    notification_uuid = str(uuid.uuid4())
    payload = notification_payload(state, purchase, notice, notification_uuid)
    record = NotificationRecord(
        notification_uuid=notification_uuid,
        notice=notice,
        bundle_id=purchase.bundle_id,
        original_transaction_id=purchase.original_transaction_id,
        signed_payload=state.signer.sign(payload),
    )
    state.notifications[notification_uuid] = record
    await deliver(state, notifier, record)
    return record


async def deliver(
    state: SimulatorState, notifier: Notifier, record: NotificationRecord
) -> DeliveryAttempt:
    """Post the record's signed payload, unchanged, to the app's current notification URL."""
    url = state.notification_url(record.bundle_id)
    if url is None:
        attempt = DeliveryAttempt(url=None, at=state.now(), error=NO_URL)
    else:
        attempt = await notifier.post(url, record.signed_payload, state.now())
    record.attempts.append(attempt)
    return attempt
