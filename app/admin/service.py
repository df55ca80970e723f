"""Provisioning rules: publishers, the StoreKit 2 integration and its apps, offers, customers
(docs/api.md §7).

The caller (the request dependency) owns the transaction; the publisher in the path exists (the
access dependency checked it).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from app.admin import repository
from app.admin.repository import CustomerTaken, NewApp
from app.admin.schemas import AppConfig, CustomerCreate, OfferPut
from app.apple.gateway import KEY_PURPOSE, key_binding
from app.db import Executor, Row
from app.enums import Ownership
from app.errors import InvalidBody, NotFound, detail
from app.security import SecretBox, hash_token, new_publisher_token


async def create_publisher(db: Executor, name: str) -> tuple[Row, str]:
    """A new publisher and its first token, shown this once (only its hash is kept)."""
    token = new_publisher_token()
    return await repository.insert_publisher(db, name, uuid4(), hash_token(token)), token


async def create_token(tx: Executor, publisher_id: int) -> tuple[Row, str]:
    """Another token of the publisher, shown this once; the earlier ones keep working."""
    token = new_publisher_token()
    row = await repository.insert_token(tx, publisher_id, uuid4(), hash_token(token))
    if row is None:
        limit = repository.MAX_TOKENS_PER_PUBLISHER
        problem = f"the publisher has {limit} tokens, as many as it may: revoke one first"
        raise InvalidBody(detail("tokens", problem))
    return row, token


async def list_tokens(db: Executor, publisher_id: int) -> list[Row]:
    return await repository.tokens(db, publisher_id)


async def revoke_token(db: Executor, publisher_id: int, token_id: UUID) -> None:
    """The token stops working on every process (within a second); 404 for a token that is not
    the publisher's (or no one's)."""
    if not await repository.revoke_token(db, publisher_id, token_id):
        raise NotFound(message=f"Entity not found: publisher token {token_id} of this publisher")


async def put_app(
    tx: Executor, box: SecretBox, publisher_id: int, bundle_id: str, config: AppConfig
) -> tuple[Row, Ownership]:
    """Add or replace the app of `bundle_id` (its key sealed to its row), switch the integration
    on and set its ownership policy when the body gives one; the app as stored, and the policy."""
    if config.bundle_id not in (None, bundle_id):
        problem = f"must be the path's bundleId {bundle_id!r}, or left out"
        raise InvalidBody(detail("bundleId", problem))
    sealed = box.seal(
        config.private_key, purpose=KEY_PURPOSE, bound_to=key_binding(publisher_id, bundle_id)
    )
    new = NewApp(
        bundle_id=bundle_id,
        app_apple_id=config.app_apple_id,
        issuer_id=config.issuer_id,
        key_id=config.key_id,
        private_key_encrypted=sealed,
        environment=config.environment,
    )
    row, policy = await repository.put_app(tx, publisher_id, new, config.ownership)
    return row, Ownership(policy)


@dataclass(frozen=True)
class StoreKit2:
    """The publisher's integration: on or off, its policy, and its apps (oldest first, without
    keys)."""

    active: bool
    ownership: Ownership
    apps: list[Row]


async def get_storekit2(tx: Executor, publisher_id: int) -> StoreKit2:
    """The integration as it stands; a publisher that never had one has it off, with no app and
    the default policy."""
    found = await repository.integration(tx, publisher_id)
    if found is None:
        return StoreKit2(False, Ownership.TRANSFER, [])
    apps = await repository.apps(tx, publisher_id)
    return StoreKit2(bool(found["active"]), Ownership(found["ownership"]), apps)


async def remove_storekit2(db: Executor, publisher_id: int) -> None:
    """Every app removed, the integration off: registers answer SK2C0004 from now on."""
    if not await repository.remove_apps(db, publisher_id):
        problem = "this publisher has no StoreKit 2 integration"
        raise NotFound(detail("publisherId", problem), message=f"Entity not found: {problem}")


async def remove_app(tx: Executor, publisher_id: int, bundle_id: str) -> None:
    """Remove one app; the last one leaves the integration off."""
    if await repository.lock_integration(tx, publisher_id) is None or not (
        await repository.delete_app(tx, publisher_id, bundle_id)
    ):
        problem = f"{bundle_id} is not an app of this publisher"
        raise NotFound(detail("bundleId", problem), message=f"Entity not found: {problem}")


async def put_offer(db: Executor, publisher_id: int, offer_id: str, body: OfferPut) -> list[str]:
    taken = await repository.put_offer(db, publisher_id, offer_id, body.title, body.product_ids)
    if taken:
        raise InvalidBody(detail("productIds", f"already mapped to another offer: {taken}"))
    return list(body.product_ids)


async def create_customer(db: Executor, publisher_id: int, body: CustomerCreate) -> Row:
    await _refuse_taken(db, publisher_id, body)
    try:
        return await repository.insert_customer(db, publisher_id, body.email, body.external_id)
    except CustomerTaken as exc:  # a concurrent create with the same email or external id
        raise InvalidBody(detail("email", "a customer with these details exists already")) from exc


async def _refuse_taken(db: Executor, publisher_id: int, body: CustomerCreate) -> None:
    for row in await repository.customers_with(db, publisher_id, body.email, body.external_id):
        field = "email" if row["email"] == body.email else "externalId"
        value = row["email"] if field == "email" else row["external_id"]
        raise InvalidBody(detail(field, f"a customer with {field} {value!r} exists already"))


async def list_offers(db: Executor, publisher_id: int) -> list[Row]:
    return await repository.offers(db, publisher_id)


async def get_customer(db: Executor, publisher_id: int, customer_id: int) -> Row:
    """The publisher's customer; 404 for anyone else's (or no one's)."""
    row = await repository.customer(db, publisher_id, customer_id)
    if row is None:
        raise NotFound(message=f"Entity not found: customer {customer_id} of this publisher")
    return row
