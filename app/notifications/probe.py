"""Test notifications (docs/api.md §6): how an operator checks that Apple reaches the service.

Requesting one asks Apple's Request a Test Notification for one of the publisher's apps (the one
named, else the oldest) in each environment the app is asked in, until Apple takes it; the token
is kept with its app and environment. Its status combines Apple's Get Test Notification Status
(each attempt to post it) with whether this service received it: Apple's answer carries the
notification it sent, whose notificationUUID names the TEST notification stored on receipt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from appstoreserverlibrary.models.Environment import Environment

from app.admin import repository as admin
from app.apple.budget import OverBudget
from app.apple.gateway import AppleApp, AppleGateway
from app.apple.history import (
    NOTIFICATION_URL_NOT_FOUND,
    TEST_NOTIFICATION_NOT_FOUND,
    SendAttempt,
    apple_test_status,
    request_test_notification,
)
from app.apple.notifications import claims_of
from app.apple.transactions import AppleFinal, AppleTransient, apple_code
from app.db import Executor
from app.errors import (
    IntegrationNotActive,
    InvalidBody,
    NotFound,
    ServiceUnavailable,
    detail,
)
from app.notifications import repository
from app.security import SecretBox

TOKEN_FIELD = "testNotificationToken"  # noqa: S105 (a field name)


def unavailable(exc: AppleTransient | OverBudget, now: datetime) -> ServiceUnavailable:
    """Apple could not answer now (or asked to wait, or its budget is spent): 503, with the
    wait when it is known."""
    error = ServiceUnavailable(detail("apple", str(exc)))
    wait = (exc.until - now).total_seconds() if isinstance(exc, OverBudget) else exc.retry_after
    if wait is not None:
        error.retry_after = max(1, math.ceil(wait))
    return error


def _refusal(app: AppleApp, environment: Environment, exc: AppleFinal) -> str:
    if apple_code(exc) == NOTIFICATION_URL_NOT_FOUND:
        return (
            f"Apple has no App Store Server Notifications URL for {app.bundle_id} in"
            f" {environment.value} (4040007): set it in App Store Connect"
        )
    return f"Apple refused the test notification of {app.bundle_id} in {environment.value}: {exc}"


async def _app(db: Executor, box: SecretBox, publisher_id: int, bundle_id: str | None) -> AppleApp:
    rows = await admin.active_apps(db, publisher_id)
    if not rows:
        raise IntegrationNotActive()
    row = (
        rows[0]
        if bundle_id is None
        else next((r for r in rows if r["bundle_id"] == bundle_id), None)
    )
    if row is None:
        raise InvalidBody(detail("bundleId", f"{bundle_id} is not an app of this publisher"))
    return AppleApp.from_record(row, box)


async def request_probe(
    db: Executor,
    apple: AppleGateway,
    box: SecretBox,
    publisher_id: int,
    bundle_id: str | None,
    now: datetime,
) -> str:
    """Ask Apple for a test notification; its token. No transaction is held while Apple is
    asked: the token is kept afterwards, in one statement."""
    app = await _app(db, box, publisher_id, bundle_id)
    refusals: list[str] = []
    for environment in app.environments():
        try:
            token = await request_test_notification(apple, app, environment)
        except (AppleTransient, OverBudget) as exc:
            raise unavailable(exc, now) from exc
        except AppleFinal as exc:
            refusals.append(_refusal(app, environment, exc))
            continue
        await repository.save_test(db, publisher_id, token, app.bundle_id, environment.value, now)
        return token
    raise InvalidBody(detail("bundleId", "; ".join(refusals)))


@dataclass(frozen=True)
class ProbeStatus:
    token: str
    received_at: datetime | None
    attempts: list[SendAttempt]


def _not_found(problem: str) -> NotFound:
    return NotFound(
        detail(TOKEN_FIELD, problem), message=f"Entity not found: test notification: {problem}"
    )


async def _received(db: Executor, publisher_id: int, signed: str | None) -> datetime | None:
    """When this service stored the TEST notification Apple sent (read unverified, only to look
    up what was stored verified)."""
    if signed is None:
        return None
    try:
        uuid = claims_of(signed).get("notificationUUID")
    except AppleFinal:
        return None
    return await repository.received_at(db, publisher_id, uuid) if isinstance(uuid, str) else None


async def probe_status(
    db: Executor,
    apple: AppleGateway,
    box: SecretBox,
    publisher_id: int,
    token: str,
    now: datetime,
) -> ProbeStatus:
    """Apple's attempts to post the test notification, and when this service received it. Not
    attempted yet (Apple's 4040008): no attempts."""
    requested = await repository.requested_test(db, publisher_id, token)
    if requested is None:
        raise _not_found("no test notification with this token was requested for this publisher")
    rows = await admin.active_apps(db, publisher_id)
    row = next((r for r in rows if r["bundle_id"] == requested["bundle_id"]), None)
    if row is None:
        raise _not_found(f"the app {requested['bundle_id']} is no longer active")
    app = AppleApp.from_record(row, box)
    try:
        status = await apple_test_status(apple, app, Environment(requested["environment"]), token)
    except (AppleTransient, OverBudget) as exc:
        raise unavailable(exc, now) from exc
    except AppleFinal as exc:
        if apple_code(exc) != TEST_NOTIFICATION_NOT_FOUND:
            raise _not_found(f"Apple does not report it: {exc}") from exc
        return ProbeStatus(token, None, [])
    received = await _received(db, publisher_id, status.signed_payload)
    return ProbeStatus(token, received, status.attempts)
