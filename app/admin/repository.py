"""The provisioning tables: `publishers`, `storekit2_integrations`, `offers`, `offer_products`,
`customers`. Their one writer and their readers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from app.apple.gateway import FIELDS as INTEGRATION_FIELDS
from app.db import Executor, Row

ID_TRIES = 8


def nine_digit_id() -> int:
    return 100_000_000 + secrets.randbelow(900_000_000)


class IdsExhausted(Exception):
    """Eight random ids in a row were taken: something is wrong, not unlucky."""


async def _with_new_id(db: Executor, statement: str, *values: object) -> Row:
    """Insert under a fresh random 9-digit id ($1), drawing again on the rare collision."""
    for _ in range(ID_TRIES):
        row = await db.fetchrow(statement, nine_digit_id(), *values)
        if row is not None:
            return row
    raise IdsExhausted()


INSERT_PUBLISHER = """
INSERT INTO publishers (id, name, token_hash) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING
RETURNING id, name
"""


async def insert_publisher(db: Executor, name: str, token_hash: str) -> Row:
    return await _with_new_id(db, INSERT_PUBLISHER, name, token_hash)


async def publisher_exists(db: Executor, publisher_id: int) -> bool:
    found = await db.fetchval("SELECT true FROM publishers WHERE id = $1", publisher_id)
    return found is not None


PUBLISHER_BY_TOKEN = "SELECT id, token_hash FROM publishers WHERE token_hash = $1"  # noqa: S105


async def publisher_by_token_hash(db: Executor, digest: str) -> Row | None:
    return await db.fetchrow(PUBLISHER_BY_TOKEN, digest)


INTEGRATION_COLUMNS = (
    "publisher_id, bundle_id, app_apple_id, issuer_id, key_id, environment, active, updated_at"
)

PUT_INTEGRATION = f"""
INSERT INTO storekit2_integrations (publisher_id, bundle_id, app_apple_id, issuer_id, key_id,
    private_key_encrypted, environment, active)
VALUES ($1, $2, $3, $4, $5, $6, $7, true)
ON CONFLICT (publisher_id) DO UPDATE SET bundle_id = excluded.bundle_id,
    app_apple_id = excluded.app_apple_id, issuer_id = excluded.issuer_id,
    key_id = excluded.key_id, private_key_encrypted = excluded.private_key_encrypted,
    environment = excluded.environment, active = true, updated_at = now()
RETURNING {INTEGRATION_COLUMNS}
"""  # noqa: S608 (constants)


@dataclass(frozen=True)
class NewIntegration:
    bundle_id: str
    app_apple_id: int | None
    issuer_id: str
    key_id: str
    private_key_encrypted: bytes
    environment: str


async def put_integration(db: Executor, publisher_id: int, new: NewIntegration) -> Row:
    values = (new.bundle_id, new.app_apple_id, new.issuer_id, new.key_id)
    row = await db.fetchrow(
        PUT_INTEGRATION, publisher_id, *values, new.private_key_encrypted, new.environment
    )
    assert row is not None
    return row


async def integration(db: Executor, publisher_id: int) -> Row | None:
    statement = f"SELECT {INTEGRATION_COLUMNS} FROM storekit2_integrations WHERE publisher_id = $1"  # noqa: S608
    return await db.fetchrow(statement, publisher_id)


ACTIVE_INTEGRATION = f"""
SELECT {", ".join(INTEGRATION_FIELDS)} FROM storekit2_integrations
WHERE publisher_id = $1 AND active
"""  # noqa: S608


async def active_integration(db: Executor, publisher_id: int) -> Row | None:
    """The integration with its encrypted key, to build `app.apple.gateway.Integration`."""
    return await db.fetchrow(ACTIVE_INTEGRATION, publisher_id)


DEACTIVATE = """
UPDATE storekit2_integrations SET active = false, updated_at = now()
WHERE publisher_id = $1 RETURNING publisher_id
"""


async def deactivate_integration(db: Executor, publisher_id: int) -> bool:
    return await db.fetchval(DEACTIVATE, publisher_id) is not None


PUT_OFFER = """
INSERT INTO offers (publisher_id, offer_id, title) VALUES ($1, $2, $3)
ON CONFLICT (publisher_id, offer_id) DO UPDATE SET title = excluded.title, updated_at = now()
"""
DROP_PRODUCTS = "DELETE FROM offer_products WHERE publisher_id = $1 AND offer_id = $2"
ADD_PRODUCTS = """
INSERT INTO offer_products (publisher_id, product_id, offer_id)
SELECT $1, product_id, $2 FROM unnest($3::text[]) AS p (product_id)
ON CONFLICT DO NOTHING
RETURNING product_id
"""


async def put_offer(
    db: Executor, publisher_id: int, offer_id: str, title: str, products: Sequence[str]
) -> list[str]:
    """Write the offer and its products; return the products another offer holds already (the
    caller's transaction must then be rolled back)."""
    await db.execute(PUT_OFFER, publisher_id, offer_id, title)
    await db.execute(DROP_PRODUCTS, publisher_id, offer_id)
    added = await db.fetch(ADD_PRODUCTS, publisher_id, offer_id, list(products))
    return sorted(set(products) - {row["product_id"] for row in added})


OFFERS = """
SELECT o.offer_id, o.title,
    coalesce(array_agg(p.product_id ORDER BY p.product_id)
        FILTER (WHERE p.product_id IS NOT NULL), '{}') AS product_ids
FROM offers AS o
LEFT JOIN offer_products AS p ON p.publisher_id = o.publisher_id AND p.offer_id = o.offer_id
WHERE o.publisher_id = $1
GROUP BY o.offer_id, o.title
ORDER BY o.offer_id
"""


async def offers(db: Executor, publisher_id: int) -> list[Row]:
    return list(await db.fetch(OFFERS, publisher_id))


CUSTOMER_COLUMNS = "id, publisher_id, email, external_id, created_at"

INSERT_CUSTOMER = f"""
INSERT INTO customers (id, publisher_id, email, external_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO NOTHING
RETURNING {CUSTOMER_COLUMNS}
"""  # noqa: S608


class CustomerTaken(Exception):
    """Another customer of the publisher has this email or external id (a concurrent create)."""


async def insert_customer(
    db: Executor, publisher_id: int, email: str, external_id: str | None
) -> Row:
    try:
        return await _with_new_id(db, INSERT_CUSTOMER, publisher_id, email, external_id)
    except asyncpg.UniqueViolationError as exc:
        raise CustomerTaken() from exc


TAKEN = """
SELECT email, external_id FROM customers
WHERE publisher_id = $1 AND (email = $2 OR (external_id IS NOT NULL AND external_id = $3))
"""


async def customers_with(
    db: Executor, publisher_id: int, email: str, external_id: str | None
) -> list[Row]:
    """The publisher's customers that already have this email or external id."""
    return list(await db.fetch(TAKEN, publisher_id, email, external_id))


async def customer(db: Executor, publisher_id: int, customer_id: int) -> Row | None:
    statement = f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND publisher_id = $2"  # noqa: S608
    return await db.fetchrow(statement, customer_id, publisher_id)
