"""The StoreKit 2 API (docs/api.md §3): thin handlers over app.purchases.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, status

from app import errors as e
from app.api.auth import PublisherOrCustomer
from app.api.deps import Ctx
from app.api.openapi import error_responses
from app.enums import SyncStatus
from app.purchases import service
from app.purchases.repository import Sync
from app.purchases.schemas import Accepted, PurchaseRequest, SynchronizationAnswer

router = APIRouter(tags=["storekit2"])

CorrelationId = Annotated[
    str | None,
    Header(alias="Correlation-Id", min_length=1, max_length=256, pattern=r"^[\x20-\x7e]+$"),
]
SyncIdPath = Annotated[str, Path(alias="synchronizationId", min_length=1, max_length=256)]


@router.post(
    "/storekit2/purchases",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="registerPurchase",
    summary="Register a StoreKit 2 purchase",
    responses=error_responses(
        e.InvalidBody,
        e.SyncInProgress,
        e.CustomerNotFound,
        e.TooManyRequests,
        e.IntegrationNotActive,
    ),
)
async def register_purchase(
    body: PurchaseRequest,
    caller: PublisherOrCustomer,
    context: Ctx,
    correlation_id: CorrelationId = None,
) -> Accepted:
    now = context.clock.now()
    try:
        sync_id = await service.register(context.db, caller, body, correlation_id, now)
    except e.CleengError as error:  # a 422 counts toward a customer token's limit
        await service.failed(context.db, caller, error, now)
        raise
    context.waker.poke()  # committed: the 202 below is a promise kept
    return Accepted(synchronization_id=sync_id)


@router.post(
    "/storekit2/purchases/transfers",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="transferPurchase",
    summary="Transfer a purchase to another customer",
    responses=error_responses(
        e.InvalidBody,
        e.TransferInProgress,
        e.CustomerNotFound,
        e.PurchaseNotFound,
        e.TooManyRequests,
        e.IntegrationNotActive,
    ),
)
async def transfer_purchase(
    body: PurchaseRequest,
    caller: PublisherOrCustomer,
    context: Ctx,
    correlation_id: CorrelationId = None,
) -> Accepted:
    now = context.clock.now()
    try:
        async with context.db.transaction() as tx:
            sync_id = await service.transfer(tx, caller, body, correlation_id, now)
    except e.CleengError as error:  # a 422 counts toward a customer token's limit: once the
        await service.failed(context.db, caller, error, now)  # transaction has let go
        raise
    context.waker.poke()  # committed: the 202 below is a promise kept
    return Accepted(synchronization_id=sync_id)


def _answer(sync: Sync) -> SynchronizationAnswer:
    finalized = sync.status == SyncStatus.FINALIZED
    return SynchronizationAnswer(
        synchronization_id=sync.id,
        status=sync.status,
        transaction_id=sync.transaction_id,
        original_transaction_id=sync.original_transaction_id,
        cleeng_customer_id=sync.customer_id,
        access_granted=sync.access_granted if finalized else None,
        offer_id=sync.offer_id if finalized and sync.access_granted else None,
        result=sync.result if finalized else None,
        correlation_id=sync.correlation_id,
        created_at=sync.created_at,
        updated_at=sync.updated_at,
    )


@router.get(
    "/purchases/synchronizations/{synchronizationId:path}",  # ids may hold any printable
    operation_id="getSynchronization",
    summary="Poll a synchronization",
    response_model_exclude_none=True,
    responses=error_responses(e.InvalidPathParameters, e.NotFound),
)
async def get_synchronization(
    sync_id: SyncIdPath, caller: PublisherOrCustomer, context: Ctx
) -> SynchronizationAnswer:
    return _answer(await service.get_sync(context.db, caller, sync_id))
