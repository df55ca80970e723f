"""Provisioning API (docs/api.md §7): thin handlers over app.admin.service."""

from __future__ import annotations

from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Path, Response, status

from app import errors as e
from app.admin import service
from app.admin.schemas import (
    OFFER_ID_PATTERN,
    AppAnswer,
    AppConfig,
    CustomerAnswer,
    CustomerCreate,
    Environment,
    OfferAnswer,
    OfferList,
    OfferPut,
    PublisherCreate,
    PublisherCreated,
    PublisherTokenCreated,
    PublisherTokenItem,
    PublisherTokenList,
    StoreKit2Answer,
    StoreKit2Config,
    StoreKit2Overview,
    TokenAnswer,
)
from app.api.auth import MAX_ID, Admin, PublisherAccess, PublisherIdPath, issue_customer_jwt
from app.api.deps import Ctx, Tx
from app.api.openapi import error_responses
from app.db import Row
from app.enums import Ownership
from app.schemas import BUNDLE_ID_PATTERN

router = APIRouter(prefix="/admin", tags=["admin"])

WITH_BODY = error_responses(e.InvalidBody, e.InvalidPathParameters, e.NotFound)
WITHOUT_BODY = error_responses(e.InvalidPathParameters, e.NotFound)

OfferIdPath = Annotated[str, Path(alias="offerId", pattern=OFFER_ID_PATTERN)]
BundleIdPath = Annotated[str, Path(alias="bundleId", pattern=BUNDLE_ID_PATTERN, max_length=155)]
CustomerIdPath = Annotated[int, Path(alias="customerId", ge=1, le=MAX_ID)]
TokenIdPath = Annotated[UUID, Path(alias="tokenId")]
# An answer that carries a secret is never kept by a cache on the way (OWASP API8).
NO_STORE = {"Cache-Control": "no-store"}


def _storekit2_answer(row: Row, ownership: Ownership) -> StoreKit2Answer:
    """An app just put: the integration is on."""
    return StoreKit2Answer(
        publisher_id=row["publisher_id"],
        bundle_id=row["bundle_id"],
        app_apple_id=row["app_apple_id"],
        issuer_id=row["issuer_id"],
        key_id=row["key_id"],
        environment=cast(Environment, row["environment"]),
        active=True,
        ownership=ownership,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _app_answer(row: Row) -> AppAnswer:
    return AppAnswer(
        bundle_id=row["bundle_id"],
        app_apple_id=row["app_apple_id"],
        issuer_id=row["issuer_id"],
        key_id=row["key_id"],
        environment=cast(Environment, row["environment"]),
        created_at=row["created_at"],
    )


def _customer_answer(row: Row) -> CustomerAnswer:
    return CustomerAnswer(
        customer_id=row["id"],
        email=row["email"],
        external_id=row["external_id"],
        app_account_token=row["app_account_token"],
        created_at=row["created_at"],
    )


@router.post(
    "/publishers",
    status_code=status.HTTP_201_CREATED,
    operation_id="createPublisher",
    responses=error_responses(e.InvalidBody),
)
async def create_publisher(
    body: PublisherCreate, _: Admin, tx: Tx, response: Response
) -> PublisherCreated:
    publisher, token = await service.create_publisher(tx, body.name)
    response.headers.update(NO_STORE)
    return PublisherCreated(
        publisher_id=publisher["id"], name=publisher["name"], publisher_token=token
    )


@router.post(
    "/publishers/{publisherId}/tokens",
    status_code=status.HTTP_201_CREATED,
    operation_id="createPublisherToken",
    responses=WITH_BODY,
)
async def create_token(
    publisher_id: PublisherIdPath, _: PublisherAccess, tx: Tx, response: Response
) -> PublisherTokenCreated:
    """Another token for the publisher, shown this once; its earlier tokens keep working."""
    row, token = await service.create_token(tx, publisher_id)
    response.headers.update(NO_STORE)
    return PublisherTokenCreated(
        token_id=row["id"], publisher_token=token, created_at=row["created_at"]
    )


@router.get(
    "/publishers/{publisherId}/tokens", operation_id="listPublisherTokens", responses=WITHOUT_BODY
)
async def list_tokens(
    publisher_id: PublisherIdPath, _: PublisherAccess, context: Ctx
) -> PublisherTokenList:
    """The publisher's tokens (never the tokens themselves), oldest first."""
    rows = await service.list_tokens(context.db, publisher_id)
    items = [
        PublisherTokenItem(
            token_id=r["id"], created_at=r["created_at"], last_used_at=r["last_used_at"]
        )
        for r in rows
    ]
    return PublisherTokenList(items=items)


@router.delete(
    "/publishers/{publisherId}/tokens/{tokenId}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="revokePublisherToken",
    responses=WITHOUT_BODY,
)
async def revoke_token(
    publisher_id: PublisherIdPath, token_id: TokenIdPath, _: PublisherAccess, context: Ctx
) -> Response:
    """The token stops working on every process within one second. Revoking the last one is
    allowed: the admin token can make another."""
    await service.revoke_token(context.db, publisher_id, token_id)
    context.tokens.forget(token_id)  # at once here; the other processes hear it from PostgreSQL
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/publishers/{publisherId}/storekit2",
    operation_id="putStoreKit2Integration",
    summary="Add or replace the app of the body's bundleId",
    responses=WITH_BODY,
)
async def put_storekit2(
    publisher_id: PublisherIdPath,
    body: StoreKit2Config,
    _: PublisherAccess,
    context: Ctx,
    tx: Tx,
) -> StoreKit2Answer:
    row, ownership = await service.put_app(tx, context.secrets, publisher_id, body.bundle_id, body)
    return _storekit2_answer(row, ownership)


@router.put(
    "/publishers/{publisherId}/storekit2/apps/{bundleId}",
    operation_id="putStoreKit2App",
    summary="Add or replace one app",
    responses=WITH_BODY,
)
async def put_app(
    publisher_id: PublisherIdPath,
    bundle_id: BundleIdPath,
    body: AppConfig,
    _: PublisherAccess,
    context: Ctx,
    tx: Tx,
) -> StoreKit2Answer:
    row, ownership = await service.put_app(tx, context.secrets, publisher_id, bundle_id, body)
    return _storekit2_answer(row, ownership)


@router.get(
    "/publishers/{publisherId}/storekit2",
    operation_id="getStoreKit2Integration",
    summary="The integration and its apps",
    responses=WITHOUT_BODY,
)
async def get_storekit2(
    publisher_id: PublisherIdPath, _: PublisherAccess, tx: Tx
) -> StoreKit2Overview:
    found = await service.get_storekit2(tx, publisher_id)
    apps = [_app_answer(row) for row in found.apps]
    return StoreKit2Overview(active=found.active, ownership=found.ownership, apps=apps)


@router.delete(
    "/publishers/{publisherId}/storekit2",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deactivateStoreKit2Integration",
    summary="Remove every app: the integration is off",
    responses=WITHOUT_BODY,
)
async def delete_storekit2(
    publisher_id: PublisherIdPath, _: PublisherAccess, context: Ctx
) -> Response:
    # One statement, the same state however often it runs: it may be repeated.
    await service.remove_storekit2(context.db.retrying, publisher_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/publishers/{publisherId}/storekit2/apps/{bundleId}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteStoreKit2App",
    summary="Remove one app; the last one leaves the integration off",
    responses=WITHOUT_BODY,
)
async def delete_app(
    publisher_id: PublisherIdPath, bundle_id: BundleIdPath, _: PublisherAccess, tx: Tx
) -> Response:
    await service.remove_app(tx, publisher_id, bundle_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/publishers/{publisherId}/offers/{offerId}", operation_id="putOffer", responses=WITH_BODY
)
async def put_offer(
    publisher_id: PublisherIdPath,
    offer_id: OfferIdPath,
    body: OfferPut,
    _: PublisherAccess,
    tx: Tx,
) -> OfferAnswer:
    products = await service.put_offer(tx, publisher_id, offer_id, body)
    return OfferAnswer(offer_id=offer_id, title=body.title, product_ids=products)


@router.get("/publishers/{publisherId}/offers", operation_id="listOffers", responses=WITHOUT_BODY)
async def list_offers(publisher_id: PublisherIdPath, _: PublisherAccess, context: Ctx) -> OfferList:
    rows = await service.list_offers(context.db, publisher_id)
    items = [
        OfferAnswer(offer_id=r["offer_id"], title=r["title"], product_ids=list(r["product_ids"]))
        for r in rows
    ]
    return OfferList(items=items)


@router.post(
    "/publishers/{publisherId}/customers",
    status_code=status.HTTP_201_CREATED,
    operation_id="createCustomer",
    responses=WITH_BODY,
)
async def create_customer(
    publisher_id: PublisherIdPath, body: CustomerCreate, _: PublisherAccess, tx: Tx
) -> CustomerAnswer:
    return _customer_answer(await service.create_customer(tx, publisher_id, body))


@router.get(
    "/publishers/{publisherId}/customers/{customerId}",
    operation_id="getCustomer",
    responses=WITHOUT_BODY,
)
async def get_customer(
    publisher_id: PublisherIdPath, customer_id: CustomerIdPath, _: PublisherAccess, context: Ctx
) -> CustomerAnswer:
    return _customer_answer(await service.get_customer(context.db, publisher_id, customer_id))


@router.post(
    "/publishers/{publisherId}/customers/{customerId}/tokens",
    status_code=status.HTTP_201_CREATED,
    operation_id="createCustomerToken",
    responses=WITHOUT_BODY,
)
async def create_customer_token(
    publisher_id: PublisherIdPath,
    customer_id: CustomerIdPath,
    _: PublisherAccess,
    context: Ctx,
    response: Response,
) -> TokenAnswer:
    customer = await service.get_customer(context.db, publisher_id, customer_id)
    account = customer["app_account_token"]
    token, expires = issue_customer_jwt(
        context, publisher_id, customer_id, context.clock.now(), account
    )
    response.headers.update(NO_STORE)
    return TokenAnswer(jwt=token, expires_at=expires)
