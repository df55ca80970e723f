"""Provisioning rules: publishers, the StoreKit 2 integration, offers, customers. Services flush only."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.schemas import CustomerCreate, OfferPut, StoreKit2Config
from app.errors import InternalError, InvalidBody, NotFound, detail
from app.models import Customer, Offer, OfferProduct, Publisher, StoreKit2Integration
from app.security import SecretBox, hash_token, new_publisher_token

_ID_TRIES = 8


def _nine_digit_id() -> int:
    return 100_000_000 + secrets.randbelow(900_000_000)


async def _insert_with_new_id(session: AsyncSession, model: Any, values: dict[str, Any]) -> int:
    """Insert a row under a fresh random 9-digit id, drawing again on the rare collision."""
    for _ in range(_ID_TRIES):
        statement = insert(model).values(id=_nine_digit_id(), **values)
        new_id = await session.scalar(
            statement.on_conflict_do_nothing(index_elements=["id"]).returning(model.id)
        )
        if new_id is not None:
            return int(new_id)
    raise InternalError()


async def create_publisher(session: AsyncSession, name: str) -> tuple[Publisher, str]:
    token = new_publisher_token()
    publisher_id = await _insert_with_new_id(
        session, Publisher, {"name": name, "token_hash": hash_token(token)}
    )
    publisher = await session.get_one(Publisher, publisher_id)
    return publisher, token


async def get_publisher(session: AsyncSession, publisher_id: int) -> Publisher:
    publisher = await session.get(Publisher, publisher_id)
    if publisher is None:
        raise NotFound()
    return publisher


async def put_storekit2(
    session: AsyncSession, box: SecretBox, publisher_id: int, config: StoreKit2Config
) -> StoreKit2Integration:
    await get_publisher(session, publisher_id)
    values = {
        "bundle_id": config.bundle_id,
        "app_apple_id": config.app_apple_id,
        "issuer_id": config.issuer_id,
        "key_id": config.key_id,
        "private_key_encrypted": box.encrypt(config.private_key),
        "environment": config.environment,
        "active": True,
    }
    statement = insert(StoreKit2Integration).values(publisher_id=publisher_id, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["publisher_id"],
        set_={**values, "updated_at": func.now()},
    )
    await session.execute(statement)
    return await get_storekit2(session, publisher_id, refresh=True)


async def get_storekit2(
    session: AsyncSession, publisher_id: int, *, refresh: bool = False
) -> StoreKit2Integration:
    await get_publisher(session, publisher_id)
    integration = await session.get(StoreKit2Integration, publisher_id, populate_existing=refresh)
    if integration is None:
        raise NotFound()
    return integration


async def deactivate_storekit2(session: AsyncSession, publisher_id: int) -> None:
    integration = await get_storekit2(session, publisher_id)
    integration.active = False
    await session.flush()


async def put_offer(
    session: AsyncSession, publisher_id: int, offer_id: str, body: OfferPut
) -> tuple[Offer, list[str]]:
    await get_publisher(session, publisher_id)
    offer_values = {"publisher_id": publisher_id, "offer_id": offer_id, "title": body.title}
    statement = insert(Offer).values(**offer_values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["publisher_id", "offer_id"],
            set_={"title": body.title, "updated_at": func.now()},
        )
    )
    await _replace_products(session, publisher_id, offer_id, body.product_ids)
    offer = await session.get_one(Offer, (publisher_id, offer_id), populate_existing=True)
    return offer, list(body.product_ids)


async def _replace_products(
    session: AsyncSession, publisher_id: int, offer_id: str, product_ids: Sequence[str]
) -> None:
    await session.execute(
        delete(OfferProduct).where(
            OfferProduct.publisher_id == publisher_id, OfferProduct.offer_id == offer_id
        )
    )
    rows = [
        {"publisher_id": publisher_id, "product_id": p, "offer_id": offer_id} for p in product_ids
    ]
    inserted = await session.scalars(
        insert(OfferProduct)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(OfferProduct.product_id)
    )
    taken = sorted(set(product_ids) - set(inserted))
    if taken:
        raise InvalidBody(detail("productIds", f"already mapped to another offer: {taken}"))


async def list_offers(session: AsyncSession, publisher_id: int) -> list[tuple[Offer, list[str]]]:
    await get_publisher(session, publisher_id)
    offers = (
        await session.scalars(
            select(Offer).where(Offer.publisher_id == publisher_id).order_by(Offer.offer_id)
        )
    ).all()
    products = (
        await session.execute(
            select(OfferProduct.offer_id, OfferProduct.product_id)
            .where(OfferProduct.publisher_id == publisher_id)
            .order_by(OfferProduct.product_id)
        )
    ).all()
    by_offer: dict[str, list[str]] = {}
    for offer_id, product_id in products:
        by_offer.setdefault(offer_id, []).append(product_id)
    return [(offer, by_offer.get(offer.offer_id, [])) for offer in offers]


async def create_customer(
    session: AsyncSession, publisher_id: int, body: CustomerCreate
) -> Customer:
    await get_publisher(session, publisher_id)
    await _refuse_taken(session, publisher_id, body)
    values = {"publisher_id": publisher_id, "email": body.email, "external_id": body.external_id}
    try:
        customer_id = await _insert_with_new_id(session, Customer, values)
    except IntegrityError as exc:  # a concurrent create with the same email or external id
        raise InvalidBody(detail("email", "a customer with these details exists already")) from exc
    return await session.get_one(Customer, customer_id)


async def _refuse_taken(session: AsyncSession, publisher_id: int, body: CustomerCreate) -> None:
    existing = await session.execute(
        select(Customer.email, Customer.external_id).where(
            Customer.publisher_id == publisher_id,
            (Customer.email == body.email)
            | (Customer.external_id.is_not(None) & (Customer.external_id == body.external_id)),
        )
    )
    for email, external_id in existing:
        field = "email" if email == body.email else "externalId"
        value = email if field == "email" else external_id
        raise InvalidBody(detail(field, f"a customer with {field} {value!r} exists already"))


async def get_customer(session: AsyncSession, publisher_id: int, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.publisher_id != publisher_id:
        raise NotFound()
    return customer
