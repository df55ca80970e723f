"""App Store Server Notifications V2 (docs/api.md §6): receive, recover, store, apply, list.

Receiving verifies the signed payload (and the signed data inside it) with the verifier of the
publisher's app the notification names (its `bundleId`, read unverified only to choose the
verifier, which then checks it) and stores it, with its job, in one statement. Applying takes the purchase's lock (the one
a sync takes to finalize), then the notification's, and applies Apple's word with the shared rules
(`app.subscriptions.changes`); a notification about a purchase never synchronized stays `pending`
until the sync that registers it applies it (`apply_pending`).

A notification recovered from Apple's notification history (the reconciliation) is verified with
the verifier of the app whose history it came from and stored exactly as a posted one, with its
job, its `source` saying `history`: from there on nothing tells them apart.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from app.admin import repository as admin
from app.apple.gateway import AppleApp, AppleGateway
from app.apple.notifications import (
    VerifiedNotification,
    claimed_bundle,
    claims_of,
    purchase_facts,
    verify_notification,
)
from app.apple.transactions import AppleFinal, AppleTransient
from app.db import Executor, Row
from app.enums import NotificationSource, NotificationStatus
from app.errors import InvalidBody, ServiceUnavailable, detail
from app.metrics import APPLE_NOTIFICATIONS_OUT_OF_DATE
from app.notifications import repository
from app.notifications.repository import NewNotification, Stored
from app.security import SecretBox
from app.subscriptions import repository as subscriptions
from app.subscriptions.changes import Notice, apply_notice, is_actionable
from app.subscriptions.events import Event

log = logging.getLogger(__name__)

STORED_ONLY = "stored only: this type changes no subscription"
# Apple keeps a notification for 180 days (Get Notification History looks no further back) and
# retries a failed post for 3 days: nothing it sends is legitimately older when it arrives. One
# that is was kept and posted again by someone (its signature never expires), or the clock here is
# wrong. It is still stored and applied: a state older than the one held never wins (the newer
# `signedDate` does, docs/api.md §6), and refusing it would only make a real late one be sent again.
OLD_AFTER = timedelta(days=180)
AHEAD_BY = timedelta(minutes=5)  # signed this far ahead of this service's clock


async def _app(db: Executor, box: SecretBox, publisher_id: int, signed: str) -> AppleApp:
    """The publisher's app the notification names (a publisher with one app: that one, which the
    verifier then holds the notification to)."""
    rows = await admin.active_apps(db, publisher_id)
    if not rows:
        raise InvalidBody(detail("publisherId", "no active StoreKit 2 integration"))
    try:
        bundle_id = claimed_bundle(claims_of(signed))
    except AppleFinal as exc:
        raise InvalidBody(detail("signedPayload", str(exc))) from exc
    if bundle_id is None and len(rows) == 1:
        return AppleApp.from_record(rows[0], box)
    row = next((row for row in rows if row["bundle_id"] == bundle_id), None)
    if row is None:
        problem = (
            f"bundleId {bundle_id[:155]} is not an app of this publisher"
            if bundle_id is not None
            else "the notification names no bundleId, and this publisher has several apps"
        )
        raise InvalidBody(detail("signedPayload", problem))
    return AppleApp.from_record(row, box)


async def _verified(apple: AppleGateway, app: AppleApp, signed: str) -> VerifiedNotification:
    try:
        return await verify_notification(apple, app, signed)
    except AppleFinal as exc:
        raise InvalidBody(detail("signedPayload", str(exc))) from exc
    except AppleTransient as exc:
        raise ServiceUnavailable() from exc


def _new(
    publisher_id: int,
    note: VerifiedNotification,
    signed: str,
    now: datetime,
    source: NotificationSource = NotificationSource.POSTED,
) -> NewNotification:
    has_purchase = note.transaction_id is not None and note.original_transaction_id is not None
    actionable = is_actionable(note.notification_type, has_purchase)
    return NewNotification(
        publisher_id=publisher_id,
        notification_uuid=note.notification_uuid,
        notification_type=note.notification_type,
        subtype=note.subtype,
        environment=note.environment,
        original_transaction_id=note.original_transaction_id,
        transaction_id=note.transaction_id,
        signed_at=note.signed_at,
        received_at=now,
        status=NotificationStatus.PENDING if actionable else NotificationStatus.STORED,
        outcome=None if actionable else STORED_ONLY,
        applied_at=None if actionable else now,
        apple_status=note.apple_status,
        transaction_info=note.transaction,
        renewal_info=note.renewal,
        signed_payload=signed,
        source=source,
    )


def _look_at_its_date(publisher_id: int, note: VerifiedNotification, now: datetime) -> None:
    """Log and count a notification signed very long ago, or ahead of this service's clock."""
    if now - note.signed_at > OLD_AFTER:
        reason, what = "old", "signed over 180 days ago"
    elif note.signed_at - now > AHEAD_BY:
        reason, what = "future", "signed ahead of this service's clock"
    else:
        return
    APPLE_NOTIFICATIONS_OUT_OF_DATE.labels(reason).inc()
    fields = {
        "publisherId": publisher_id,
        "notificationUUID": note.notification_uuid,
        "notificationType": note.notification_type,
        "signedDate": note.signed_at.isoformat(),
        "ageDays": round((now - note.signed_at).total_seconds() / 86400, 1),
    }
    log.warning("apple notification %s", what, extra={"fields": fields})


async def receive(
    db: Executor, apple: AppleGateway, box: SecretBox, publisher_id: int, signed: str, now: datetime
) -> tuple[str, bool]:
    """Verify and store a notification with its job (one statement, no transaction held while
    verifying, which may wait on OCSP); return its UUID and whether it was known already."""
    app = await _app(db, box, publisher_id, signed)
    note = await _verified(apple, app, signed)
    _look_at_its_date(publisher_id, note, now)
    notification_id = await repository.store(db, _new(publisher_id, note, signed, now))
    return note.notification_uuid, notification_id is None


def _uuid(signed: str) -> str | None:
    try:
        value = claims_of(signed).get("notificationUUID")
    except AppleFinal:
        return None
    return value if isinstance(value, str) else None


async def unknown(db: Executor, publisher_id: int, signed_payloads: list[str]) -> list[str]:
    """The payloads whose notificationUUID the publisher has not stored, in their order. The
    UUID is read unverified, only to skip what was stored (verified) before; a payload with no
    readable UUID is kept, for the verification to refuse."""
    uuids = {signed: _uuid(signed) for signed in signed_payloads}
    stored = await repository.known(db, publisher_id, [u for u in uuids.values() if u])
    return [signed for signed, uuid in uuids.items() if uuid is None or uuid not in stored]


async def verify_recovered(apple: AppleGateway, app: AppleApp, signed: str) -> VerifiedNotification:
    """Verify a notification from the history of `app`, as a posted one is verified; raises
    `AppleFinal` (refused) or `AppleTransient` (its certificates could not be checked now)."""
    return await verify_notification(apple, app, signed)


async def store_recovered(
    db: Executor, publisher_id: int, note: VerifiedNotification, signed: str, now: datetime
) -> bool:
    """Store a verified notification from Apple's history, with its job, as a posted one is
    stored; False when its UUID was stored meanwhile."""
    new = _new(publisher_id, note, signed, now, NotificationSource.HISTORY)
    return await repository.store(db, new) is not None


def _notice(note: Stored) -> Notice:
    assert note.transaction_info is not None
    facts = purchase_facts(
        note.transaction_info, note.renewal_info, note.apple_status, note.signed_at
    )
    product = (note.renewal_info or {}).get("autoRenewProductId")
    return Notice(note.notification_type, note.signed_at, facts, product)


async def _apply(tx: Executor, note: Stored, now: datetime, *, synced: bool) -> list[Event]:
    """Apply one pending notification (locked by the caller); any other status is left alone."""
    has_purchase = note.transaction_id is not None and note.original_transaction_id is not None
    pending = note.status == NotificationStatus.PENDING
    if not pending or not is_actionable(note.notification_type, has_purchase):
        return []
    change = await apply_notice(tx, note.publisher_id, _notice(note), now, synced=synced)
    applied_at = None if change.status == NotificationStatus.PENDING else now
    await repository.save_result(
        tx, note.id, change.status, change.outcome, change.subscription_id, applied_at
    )
    fields = {
        "notificationUUID": note.notification_uuid,
        "notificationType": note.notification_type,
        "status": change.status,
        "outcome": change.outcome,
    }
    log.info("apple notification", extra={"fields": fields})
    return change.events


async def apply_stored(
    tx: Executor, publisher_id: int, notification_id: int, now: datetime
) -> list[Event]:
    """Lock the purchase as the sync does, then the notification, and apply it if still due."""
    original = await repository.purchase_of(tx, publisher_id, notification_id)
    if original is None:
        return []
    await subscriptions.lock_purchase(tx, publisher_id, original)
    note = await repository.lock(tx, notification_id)
    return [] if note is None else await _apply(tx, note, now, synced=False)


async def apply_pending(
    tx: Executor, publisher_id: int, original: str, now: datetime
) -> list[Event]:
    """The purchase's waiting notifications, oldest first; called by the sync as it finalizes,
    under the purchase's lock, with the state it just fetched from Apple."""
    events: list[Event] = []
    for note in await repository.waiting(tx, publisher_id, original):
        events += await _apply(tx, note, now, synced=True)
    return events


async def list_notifications(
    db: Executor, publisher_id: int, status: NotificationStatus | None, limit: int
) -> list[Row]:
    """The publisher's notifications, newest first."""
    return await repository.newest(db, publisher_id, status, limit)
