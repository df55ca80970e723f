"""Domain objects as control-API answers."""

from __future__ import annotations

from app.simulator.faults import Fault
from app.simulator.model import DeliveryAttempt, NotificationRecord, Phase, Purchase, Transaction
from app.simulator.schemas import (
    AttemptOut,
    FaultOut,
    NotificationOut,
    PurchaseOut,
    TransactionOut,
)


def _attempt_out(attempt: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(
        url=attempt.url,
        at=attempt.at,
        send_attempt_result=attempt.result,
        status_code=attempt.status_code,
        error=attempt.error,
    )


def notification_out(record: NotificationRecord) -> NotificationOut:
    last = record.attempts[-1] if record.attempts else None
    return NotificationOut(
        notification_uuid=record.notification_uuid,
        notification_type=record.notice.notification_type,
        subtype=record.notice.subtype,
        bundle_id=record.bundle_id,
        environment=record.environment,
        signed_date=record.signed_date,
        original_transaction_id=record.original_transaction_id,
        url=last.url if last else None,
        status_code=last.status_code if last else None,
        error=last.error if last else None,
        attempts=[_attempt_out(a) for a in record.attempts],
        signed_payload=record.signed_payload,
    )


def _transaction_out(transaction: Transaction) -> TransactionOut:
    return TransactionOut(
        transaction_id=transaction.transaction_id,
        order_id=transaction.order_id,
        purchase_date=transaction.purchase_date,
        expires_date=transaction.expires_date,
        transaction_reason=transaction.reason,
        revocation_date=transaction.revocation_date,
        revocation_reason=transaction.revocation_reason,
        revocation_type=transaction.revocation_type,
        finished=transaction.finished,
        consumption=transaction.consumption,
    )


def purchase_out(
    purchase: Purchase, now: int, record: NotificationRecord | None = None
) -> PurchaseOut:
    latest, subscription = purchase.latest, purchase.is_subscription
    return PurchaseOut(
        transaction_id=latest.transaction_id,
        original_transaction_id=purchase.original_transaction_id,
        bundle_id=purchase.bundle_id,
        product_id=purchase.product_id,
        type=purchase.product_type,
        environment=purchase.environment,
        account=purchase.account,
        app_transaction_id=purchase.app_transaction_id,
        in_app_ownership_type=purchase.ownership,
        status=int(purchase.status(now)) if subscription else None,
        auto_renew=purchase.auto_renew if subscription else None,
        purchase_date=latest.purchase_date,
        original_purchase_date=purchase.original.purchase_date,
        expires_date=latest.expires_date,
        grace_period_expires_date=purchase.grace_period_expires_date,
        is_in_billing_retry_period=(
            purchase.phase in (Phase.BILLING_RETRY, Phase.GRACE_PERIOD) if subscription else None
        ),
        revocation_date=latest.revocation_date,
        revocation_reason=latest.revocation_reason,
        app_account_token=purchase.app_account_token,
        offer_type=purchase.offer_type,
        price=purchase.price,
        currency=purchase.currency,
        subscription_group_identifier=purchase.subscription_group_identifier
        if subscription
        else None,
        transactions=[_transaction_out(t) for t in purchase.transactions],
        notification=notification_out(record) if record else None,
    )


def fault_out(fault: Fault) -> FaultOut:
    return FaultOut(
        fault_id=fault.fault_id,
        kind=fault.kind,
        transaction_id=fault.transaction_id,
        share=fault.share,
        times=fault.times,
        delay_seconds=fault.delay_seconds,
        retry_after_ms=fault.retry_after_ms,
        error_code=fault.error_code,
        hits=fault.hits,
    )
