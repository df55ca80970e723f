"""Control API, part one: apps, purchases and what happens to them (``/sim``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, HTTPException

from app.simulator import lifecycle
from app.simulator.apps import InvalidKey, app_out, register_app
from app.simulator.delivery import Notifier
from app.simulator.deps import NotifierDep, State
from app.simulator.lifecycle import Refused
from app.simulator.model import Notice, Purchase
from app.simulator.notifications import notify
from app.simulator.schemas import (
    Action,
    AppCreate,
    AppOut,
    AutoRenewAction,
    Delivery,
    ExpireAction,
    GracePeriodAction,
    NotificationUrl,
    NotifyAction,
    PurchaseCreate,
    PurchaseOut,
    RevokeAction,
)
from app.simulator.state import Conflict, SimulatorState
from app.simulator.views import purchase_out

router = APIRouter(prefix="/sim", tags=["simulator"])


@router.post("/apps", status_code=201, response_model_exclude_none=True)
async def register(body: AppCreate, state: State) -> AppOut:
    """Register an app and its API key; without ``publicKey`` the answer has a ``privateKey``."""
    try:
        return register_app(state, body)
    except InvalidKey as error:
        raise HTTPException(422, str(error)) from error
    except Conflict as error:
        raise HTTPException(409, str(error)) from error


@router.put("/apps/{bundle_id}/notification-url")
async def set_notification_url(bundle_id: str, body: NotificationUrl, state: State) -> AppOut:
    app = state.apps.get(bundle_id)
    if app is None:
        raise HTTPException(404, f"no app {bundle_id}")
    app.notification_url = body.url
    return app_out(app)


def _purchase(state: SimulatorState, transaction_id: str) -> Purchase:
    found = state.find(transaction_id)
    if found is None:
        raise HTTPException(404, f"no purchase with transaction {transaction_id}")
    return found[0]


async def _answer(
    state: SimulatorState,
    notifier: Notifier,
    purchase: Purchase,
    notice: Notice | None,
    delivery: Delivery,
) -> PurchaseOut:
    fail = delivery.fail_delivery
    record = await notify(state, notifier, purchase, notice, fail) if notice else None
    return purchase_out(purchase, state.now(), record)


async def _act(
    state: SimulatorState,
    notifier: Notifier,
    transaction_id: str,
    body: Action,
    action: Callable[[Purchase], Notice],
) -> PurchaseOut:
    purchase = _purchase(state, transaction_id)
    try:
        notice = action(purchase)
    except Refused as error:
        raise HTTPException(error.status_code, str(error)) from error
    return await _answer(state, notifier, purchase, notice if body.notify else None, body)


@router.post("/purchases", status_code=201)
async def create_purchase(body: PurchaseCreate, state: State, notifier: NotifierDep) -> PurchaseOut:
    """A purchase of any product type; ``notify`` posts SUBSCRIBED or ONE_TIME_CHARGE."""
    if body.bundle_id not in state.apps:
        raise HTTPException(404, f"no app {body.bundle_id}; POST /sim/apps first")
    try:
        purchase, notice = lifecycle.create_purchase(state, body)
    except Refused as error:
        raise HTTPException(error.status_code, str(error)) from error
    return await _answer(state, notifier, purchase, notice if body.notify else None, body)


@router.get("/purchases/{transaction_id}")
async def get_purchase(transaction_id: str, state: State) -> PurchaseOut:
    return purchase_out(_purchase(state, transaction_id), state.now())


@router.post("/purchases/{transaction_id}/renew")
async def renew(
    transaction_id: str, state: State, notifier: NotifierDep, body: Action | None = None
) -> PurchaseOut:
    """A new transaction, one period later: DID_RENEW (SUBSCRIBED/RESUBSCRIBE after an expiry)."""
    return await _act(
        state, notifier, transaction_id, body or Action(), lambda p: lifecycle.renew(state, p)
    )


@router.post("/purchases/{transaction_id}/expire")
async def expire(
    transaction_id: str, state: State, notifier: NotifierDep, body: ExpireAction | None = None
) -> PurchaseOut:
    """EXPIRED with subtype VOLUNTARY, BILLING_RETRY, PRICE_INCREASE or PRODUCT_NOT_FOR_SALE."""
    body = body or ExpireAction()
    subtype = body.subtype
    return await _act(
        state, notifier, transaction_id, body, lambda p: lifecycle.expire(state, p, subtype)
    )


@router.post("/purchases/{transaction_id}/refund")
async def refund(
    transaction_id: str, state: State, notifier: NotifierDep, body: RevokeAction | None = None
) -> PurchaseOut:
    """Revokes the latest transaction (``revocationDate``, ``revocationReason``): REFUND."""
    body = body or RevokeAction()
    reason = body.revocation_reason
    notice = Notice("REFUND")
    return await _act(
        state,
        notifier,
        transaction_id,
        body,
        lambda p: lifecycle.revoke(state, p, reason, notice),
    )


@router.post("/purchases/{transaction_id}/revoke")
async def revoke(
    transaction_id: str, state: State, notifier: NotifierDep, body: RevokeAction | None = None
) -> PurchaseOut:
    """Family Sharing revocation of the latest transaction: REVOKE."""
    body = body or RevokeAction()
    reason = body.revocation_reason
    notice = Notice("REVOKE")
    return await _act(
        state,
        notifier,
        transaction_id,
        body,
        lambda p: lifecycle.revoke(state, p, reason, notice),
    )


@router.post("/purchases/{transaction_id}/refund-reversed")
async def refund_reversed(
    transaction_id: str, state: State, notifier: NotifierDep, body: Action | None = None
) -> PurchaseOut:
    return await _act(
        state,
        notifier,
        transaction_id,
        body or Action(),
        lambda p: lifecycle.reverse_refund(state, p),
    )


@router.post("/purchases/{transaction_id}/billing-retry")
async def billing_retry(
    transaction_id: str, state: State, notifier: NotifierDep, body: Action | None = None
) -> PurchaseOut:
    """Renewal failed, no grace period: status 3, DID_FAIL_TO_RENEW without subtype."""
    return await _act(
        state,
        notifier,
        transaction_id,
        body or Action(),
        lambda p: lifecycle.billing_retry(state, p),
    )


@router.post("/purchases/{transaction_id}/grace-period")
async def grace_period(
    transaction_id: str, state: State, notifier: NotifierDep, body: GracePeriodAction | None = None
) -> PurchaseOut:
    """Renewal failed within a grace period: status 4, DID_FAIL_TO_RENEW/GRACE_PERIOD."""
    body = body or GracePeriodAction()
    duration_ms = int(body.duration_seconds * 1000)
    return await _act(
        state,
        notifier,
        transaction_id,
        body,
        lambda p: lifecycle.grace_period(state, p, duration_ms),
    )


@router.post("/purchases/{transaction_id}/grace-period-expired")
async def grace_period_expired(
    transaction_id: str, state: State, notifier: NotifierDep, body: Action | None = None
) -> PurchaseOut:
    """The grace period ended unpaid: back to billing retry (status 3), GRACE_PERIOD_EXPIRED."""
    return await _act(
        state,
        notifier,
        transaction_id,
        body or Action(),
        lambda p: lifecycle.grace_period_expired(state, p),
    )


@router.post("/purchases/{transaction_id}/recover")
async def recover(
    transaction_id: str, state: State, notifier: NotifierDep, body: Action | None = None
) -> PurchaseOut:
    """Payment recovered in billing retry or grace: a renewal, DID_RENEW/BILLING_RECOVERY."""
    return await _act(
        state, notifier, transaction_id, body or Action(), lambda p: lifecycle.recover(state, p)
    )


@router.post("/purchases/{transaction_id}/auto-renew")
async def auto_renew(
    transaction_id: str, body: AutoRenewAction, state: State, notifier: NotifierDep
) -> PurchaseOut:
    """DID_CHANGE_RENEWAL_STATUS with AUTO_RENEW_ENABLED or AUTO_RENEW_DISABLED."""
    enabled = body.enabled
    return await _act(
        state,
        notifier,
        transaction_id,
        body,
        lambda p: lifecycle.set_auto_renew(state, p, enabled),
    )


@router.post("/purchases/{transaction_id}/notify")
async def send_notification(
    transaction_id: str, body: NotifyAction, state: State, notifier: NotifierDep
) -> PurchaseOut:
    """Any notification type and subtype about the purchase as it is now."""
    notice = Notice(body.notification_type, body.subtype)
    return await _answer(state, notifier, _purchase(state, transaction_id), notice, body)
