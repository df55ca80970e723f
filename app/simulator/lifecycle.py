"""What happens to purchases: creation and each action, with the notification Apple would send.

When a subscription leaves the active state before its ``expiresDate`` (expire, billing retry,
grace period), the latest transaction's ``expiresDate`` moves back to now, as if the clock had
reached it; a renewal starts at the later of the current expiry and now.
"""

from __future__ import annotations

from app.simulator.model import (
    DAY_MS,
    AppTransaction,
    Notice,
    Phase,
    ProductType,
    Purchase,
    Transaction,
)
from app.simulator.orders import order_id
from app.simulator.schemas import PurchaseCreate
from app.simulator.state import SimulatorState

DEFAULT_PRICE = 9990
DEFAULT_CURRENCY = "USD"
DEFAULT_GROUP = "20000000"
DEFAULT_PERIOD_MS = 30 * DAY_MS
BILLING_ERROR = 2
EXPIRATION_INTENTS = {
    "VOLUNTARY": 1,
    "BILLING_RETRY": 2,
    "PRICE_INCREASE": 3,
    "PRODUCT_NOT_FOR_SALE": 4,
}
_REVOCATION_TYPES = {"REFUND": "REFUND_FULL", "REVOKE": "FAMILY_REVOKE"}


class Refused(Exception):
    """An action that does not apply to the purchase in its state (409), or a bad request (422)."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.status_code = status_code


def create_purchase(state: SimulatorState, body: PurchaseCreate) -> tuple[Purchase, Notice]:
    now = state.now()
    purchase_date = body.purchase_date if body.purchase_date is not None else now
    expires = _initial_expiry(body, purchase_date)
    subscription = body.type is ProductType.AUTO_RENEWABLE
    first = new_transaction(state, purchase_date, expires, "PURCHASE", subscription)
    purchase = Purchase(
        bundle_id=body.bundle_id,
        product_id=body.product_id,
        product_type=body.type,
        environment=body.environment,
        transactions=[first],
        account=body.account or first.transaction_id,
        ownership=body.in_app_ownership_type,
        period_ms=expires - purchase_date if expires is not None else DEFAULT_PERIOD_MS,
        quantity=body.quantity,
        app_account_token=str(body.app_account_token) if body.app_account_token else None,
        offer_type=body.offer_type,
        price=body.price if body.price is not None else DEFAULT_PRICE,
        currency=body.currency or DEFAULT_CURRENCY,
        subscription_group_identifier=body.subscription_group_identifier or DEFAULT_GROUP,
        renewal_signed_date=now,
    )
    purchase.app_transaction_id = _app_transaction(state, purchase).app_transaction_id
    state.add_purchase(purchase)
    return purchase, _initial_notice(body.type)


def _app_transaction(state: SimulatorState, purchase: Purchase) -> AppTransaction:
    """The customer's download of the app: made with the customer's first purchase."""
    found = state.app_transaction_of(purchase.customer)
    if found is not None:
        return found
    made = AppTransaction(
        app_transaction_id=state.next_transaction_id(),
        bundle_id=purchase.bundle_id,
        environment=purchase.environment,
        account=purchase.account,
        original_purchase_date=purchase.original.purchase_date,
    )
    state.add_app_transaction(made)
    return made


def new_transaction(
    state: SimulatorState, purchase_date: int, expires: int | None, reason: str, line_item: bool
) -> Transaction:
    now, transaction_id = state.now(), state.next_transaction_id()
    return Transaction(
        transaction_id=transaction_id,
        purchase_date=purchase_date,
        expires_date=expires,
        reason=reason,
        web_order_line_item_id=state.next_web_order_line_item_id() if line_item else None,
        signed_date=now,
        order_id=order_id(transaction_id),
        modified_date=now,
    )


def _initial_expiry(body: PurchaseCreate, purchase_date: int) -> int | None:
    if body.type in (ProductType.CONSUMABLE, ProductType.NON_CONSUMABLE):
        if body.expires_date is not None:
            raise Refused(f"a {body.type} purchase has no expiresDate", 422)
        return None
    if body.expires_date is None and body.type is ProductType.AUTO_RENEWABLE:
        return purchase_date + DEFAULT_PERIOD_MS
    if body.expires_date is not None and body.expires_date <= purchase_date:
        raise Refused("expiresDate must be after purchaseDate", 422)
    return body.expires_date


def _initial_notice(kind: ProductType) -> Notice:
    if kind is ProductType.AUTO_RENEWABLE:
        return Notice("SUBSCRIBED", "INITIAL_BUY")
    return Notice("ONE_TIME_CHARGE")


def _subscription(purchase: Purchase) -> None:
    if not purchase.is_subscription:
        raise Refused(f"{purchase.original_transaction_id} is not an auto-renewable subscription")


def _not_revoked(purchase: Purchase) -> None:
    if purchase.latest.revocation_date is not None:
        raise Refused(f"{purchase.original_transaction_id} is revoked")


def _add_renewal(state: SimulatorState, purchase: Purchase, start: int, reason: str) -> None:
    now = state.now()
    renewal = new_transaction(state, start, start + purchase.period_ms, reason, True)
    state.add_transaction(purchase, renewal)
    _set_phase(purchase, Phase.ACTIVE, now, expiration_intent=None)
    purchase.auto_renew = True
    purchase.grace_period_expires_date = None


def _set_phase(purchase: Purchase, phase: Phase, now: int, expiration_intent: int | None) -> None:
    purchase.phase = phase
    purchase.expiration_intent = expiration_intent
    purchase.renewal_changed(now)


def _end_period_now(purchase: Purchase, now: int) -> None:
    latest = purchase.latest
    if latest.expires_date is not None and latest.expires_date > now:
        latest.expires_date = now
        latest.modified(now)


def renew(state: SimulatorState, purchase: Purchase) -> Notice:
    """A renewal: ``DID_RENEW``; after an expiry, a resubscription (``SUBSCRIBED``/``RESUBSCRIBE``)."""
    _subscription(purchase)
    _not_revoked(purchase)
    if purchase.phase in (Phase.BILLING_RETRY, Phase.GRACE_PERIOD):
        return recover(state, purchase)
    now = state.now()
    if purchase.phase is Phase.EXPIRED:
        _add_renewal(state, purchase, now, "PURCHASE")
        return Notice("SUBSCRIBED", "RESUBSCRIBE")
    _add_renewal(state, purchase, max(purchase.latest.expires_date or now, now), "RENEWAL")
    return Notice("DID_RENEW")


def recover(state: SimulatorState, purchase: Purchase) -> Notice:
    """Payment succeeded during billing retry or grace: a renewal from now."""
    _subscription(purchase)
    if purchase.phase not in (Phase.BILLING_RETRY, Phase.GRACE_PERIOD):
        raise Refused(f"{purchase.original_transaction_id} is not in billing retry or grace")
    _add_renewal(state, purchase, state.now(), "RENEWAL")
    return Notice("DID_RENEW", "BILLING_RECOVERY")


def expire(state: SimulatorState, purchase: Purchase, subtype: str | None) -> Notice:
    _subscription(purchase)
    chosen = subtype or ("BILLING_RETRY" if purchase.auto_renew else "VOLUNTARY")
    now = state.now()
    _end_period_now(purchase, now)
    _set_phase(purchase, Phase.EXPIRED, now, EXPIRATION_INTENTS[chosen])
    purchase.auto_renew = False
    return Notice("EXPIRED", chosen)


def billing_retry(state: SimulatorState, purchase: Purchase) -> Notice:
    _subscription(purchase)
    _not_revoked(purchase)
    now = state.now()
    _end_period_now(purchase, now)
    _set_phase(purchase, Phase.BILLING_RETRY, now, BILLING_ERROR)
    purchase.grace_period_expires_date = None
    return Notice("DID_FAIL_TO_RENEW")


def grace_period(state: SimulatorState, purchase: Purchase, duration_ms: int) -> Notice:
    _subscription(purchase)
    _not_revoked(purchase)
    now = state.now()
    _end_period_now(purchase, now)
    _set_phase(purchase, Phase.GRACE_PERIOD, now, BILLING_ERROR)
    purchase.grace_period_expires_date = now + duration_ms
    return Notice("DID_FAIL_TO_RENEW", "GRACE_PERIOD")


def grace_period_expired(state: SimulatorState, purchase: Purchase) -> Notice:
    """The grace period ends without payment: back to billing retry (status 3)."""
    _subscription(purchase)
    if purchase.phase is not Phase.GRACE_PERIOD:
        raise Refused(f"{purchase.original_transaction_id} is not in a grace period")
    now = state.now()
    _set_phase(purchase, Phase.BILLING_RETRY, now, BILLING_ERROR)
    grace = purchase.grace_period_expires_date
    purchase.grace_period_expires_date = min(grace, now) if grace is not None else now
    return Notice("GRACE_PERIOD_EXPIRED")


def set_auto_renew(state: SimulatorState, purchase: Purchase, enabled: bool) -> Notice:
    _subscription(purchase)
    purchase.auto_renew = enabled
    purchase.renewal_changed(state.now())
    return Notice(
        "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED" if enabled else "AUTO_RENEW_DISABLED"
    )


def revoke(state: SimulatorState, purchase: Purchase, reason: int, notice: Notice) -> Notice:
    """Refund (``REFUND``) or Family Sharing revocation (``REVOKE``) of the latest transaction."""
    _not_revoked(purchase)
    now = state.now()
    purchase.latest.revocation_date = now
    purchase.latest.revocation_reason = reason
    purchase.latest.revocation_type = _REVOCATION_TYPES[notice.notification_type]
    purchase.latest.modified(now)
    return notice


def reverse_refund(state: SimulatorState, purchase: Purchase) -> Notice:
    revoked = [t for t in purchase.transactions if t.revocation_date is not None]
    if not revoked:
        raise Refused(f"{purchase.original_transaction_id} has no refunded transaction")
    now = state.now()
    for transaction in revoked:
        transaction.revocation_date = None
        transaction.revocation_reason = None
        transaction.revocation_type = None
        transaction.modified(now)
    return Notice("REFUND_REVERSED")
