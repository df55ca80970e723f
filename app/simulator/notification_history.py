"""Get Notification History: every notification the simulator sent or failed to send, 20 a page.

The request's ``startDate`` and ``endDate`` (Unix ms) are required: a missing or malformed one is
4000015 or 4000016, a start more than 180 days ago (30 in the sandbox) 4000012, a start not before
the end 4000013; an end in the future means now. ``notificationType`` and ``notificationSubtype``
must be a valid pair (4000018); ``transactionId`` (any of a customer's transactions) and
``notificationType`` exclude each other (4000019); ``onlyFailures`` keeps the notifications no
attempt delivered. A notification is in the window by the date it was first signed; the history
is in the order the notifications were made. The ``paginationToken`` of a page leads to the next;
it holds a fingerprint of the request body, and with another body it is 4000017 (Apple: use the
same body for every page); a garbled one is 4000014.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.simulator import tokens
from app.simulator.calls import PAGE_SIZE, Scope, find_customer, is_id
from app.simulator.errors import ErrorCode, apple_error
from app.simulator.model import DAY_MS, Environment, NotificationRecord
from app.simulator.state import Customer
from app.simulator.validation import boolean, is_int

RETENTION_DAYS = {Environment.PRODUCTION: 180, Environment.SANDBOX: 30}
# Each notification type, and the subtypes it comes with (None: without one).
SUBTYPES: dict[str, frozenset[str | None]] = {
    "SUBSCRIBED": frozenset({"INITIAL_BUY", "RESUBSCRIBE"}),
    "DID_CHANGE_RENEWAL_PREF": frozenset({"UPGRADE", "DOWNGRADE", None}),
    "DID_CHANGE_RENEWAL_STATUS": frozenset({"AUTO_RENEW_ENABLED", "AUTO_RENEW_DISABLED"}),
    "OFFER_REDEEMED": frozenset({"INITIAL_BUY", "RESUBSCRIBE", "UPGRADE", "DOWNGRADE", None}),
    "DID_RENEW": frozenset({"BILLING_RECOVERY", None}),
    "EXPIRED": frozenset({"VOLUNTARY", "BILLING_RETRY", "PRICE_INCREASE", "PRODUCT_NOT_FOR_SALE"}),
    "DID_FAIL_TO_RENEW": frozenset({"GRACE_PERIOD", None}),
    "PRICE_INCREASE": frozenset({"PENDING", "ACCEPTED"}),
    "RENEWAL_EXTENSION": frozenset({"SUMMARY", "FAILURE"}),
    "EXTERNAL_PURCHASE_TOKEN": frozenset({"UNREPORTED"}),
    **dict.fromkeys(
        (
            "GRACE_PERIOD_EXPIRED",
            "REFUND",
            "REFUND_DECLINED",
            "REFUND_REVERSED",
            "CONSUMPTION_REQUEST",
            "RENEWAL_EXTENDED",
            "REVOKE",
            "TEST",
            "ONE_TIME_CHARGE",
            "RESCIND_CONSENT",
            "METADATA_UPDATE",
            "MIGRATION",
            "PRICE_CHANGE",
        ),
        frozenset({None}),
    ),
}
KNOWN_SUBTYPES = frozenset(s for subtypes in SUBTYPES.values() for s in subtypes if s)


@dataclass(frozen=True)
class HistoryRequest:
    start: int
    end: int
    notification_type: str | None
    subtype: str | None
    customer: Customer | None
    only_failures: bool
    fingerprint: str


def _dates(scope: Scope, body: dict[str, Any]) -> tuple[int, int]:
    start, end, now = body.get("startDate"), body.get("endDate"), scope.state.now()
    if not is_int(start) or start < 0:
        raise apple_error(ErrorCode.INVALID_START_DATE)
    if not is_int(end) or end < 0:
        raise apple_error(ErrorCode.INVALID_END_DATE)
    retention = RETENTION_DAYS[scope.environment or Environment.PRODUCTION]
    if start < now - retention * DAY_MS:
        raise apple_error(ErrorCode.START_DATE_TOO_FAR_IN_PAST)
    end = min(end, now)
    if start >= end:
        raise apple_error(ErrorCode.START_DATE_AFTER_END_DATE)
    return start, end


def _kind(body: dict[str, Any]) -> tuple[str | None, str | None]:
    kind, subtype = body.get("notificationType"), body.get("notificationSubtype")
    if kind is None and subtype is None:
        return None, None
    if not isinstance(kind, str) or kind not in SUBTYPES:
        raise apple_error(ErrorCode.INVALID_NOTIFICATION_TYPE)
    if subtype is not None and (subtype not in KNOWN_SUBTYPES or subtype not in SUBTYPES[kind]):
        raise apple_error(ErrorCode.INVALID_NOTIFICATION_TYPE)
    return kind, subtype


def _customer(scope: Scope, body: dict[str, Any]) -> Customer | None:
    transaction_id = body.get("transactionId")
    if transaction_id is None:
        return None
    if body.get("notificationType") is not None:
        raise apple_error(ErrorCode.MULTIPLE_FILTERS_SUPPLIED)
    if not isinstance(transaction_id, str) or not is_id(transaction_id):
        raise apple_error(ErrorCode.INVALID_TRANSACTION_ID)
    return find_customer(scope, transaction_id)


def parse_request(scope: Scope, body: dict[str, Any]) -> HistoryRequest:
    start, end = _dates(scope, body)
    customer = _customer(scope, body)
    kind, subtype = _kind(body)
    only = boolean(body, "onlyFailures", ErrorCode.GENERAL_BAD_REQUEST, required=False)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    fingerprint = hashlib.sha256(canonical).hexdigest()[:16]
    return HistoryRequest(start, end, kind, subtype, customer, bool(only), fingerprint)


def _after(token: str | None, fingerprint: str) -> int:
    if token is None:
        return 0
    parts = tokens.decode(token, int, str)
    if parts is None:
        raise apple_error(ErrorCode.INVALID_PAGINATION_TOKEN)
    if parts[1] != fingerprint:
        raise apple_error(ErrorCode.PAGINATION_TOKEN_EXPIRED)
    return int(parts[0])


def _matches(scope: Scope, query: HistoryRequest, record: NotificationRecord) -> bool:
    if record.bundle_id != scope.app.bundle_id or not query.start <= record.signed_date < query.end:
        return False
    if scope.environment not in (None, record.environment):
        return False
    kind = record.notice.notification_type
    if query.notification_type not in (None, kind) or query.subtype not in (
        None,
        record.notice.subtype,
    ):
        return False
    if query.only_failures and record.delivered:
        return False
    return query.customer is None or _customer_of(scope, record) == query.customer


def _customer_of(scope: Scope, record: NotificationRecord) -> Customer | None:
    original = record.original_transaction_id
    purchase = scope.state.purchases.get(original) if original is not None else None
    return purchase.customer if purchase is not None else None


def _item(record: NotificationRecord) -> dict[str, object]:
    return {"signedPayload": record.signed_payload, "sendAttempts": send_attempts(record)}


def send_attempts(record: NotificationRecord) -> list[dict[str, object]]:
    return [{"attemptDate": a.at, "sendAttemptResult": a.result.value} for a in record.attempts]


def history_body(scope: Scope, query: HistoryRequest, token: str | None) -> dict[str, object]:
    """NotificationHistoryResponse."""
    after = _after(token, query.fingerprint)
    found: list[NotificationRecord] = []
    for record in scope.state.notifications.values():
        if record.seq > after and _matches(scope, query, record):
            found.append(record)
            if len(found) > PAGE_SIZE:
                break
    page = found[:PAGE_SIZE]
    last = page[-1].seq if page else after
    return {
        "notificationHistory": [_item(r) for r in page],
        "hasMore": len(found) > PAGE_SIZE,
        "paginationToken": tokens.encode(last, query.fingerprint),
    }
