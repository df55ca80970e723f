"""The provisioning tables: `publishers` and their `publisher_tokens`, `storekit2_integrations` and
their `storekit2_apps`, `offers`, `offer_products`, `customers`. Their one writer and their
readers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from app.apple.gateway import FIELDS as APP_FIELDS
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


# A publisher and its first token, in one statement. $1 the new id, $2 name, $3 token id,
# $4 token hash. Nothing at all when the id is taken (the caller draws another).
INSERT_PUBLISHER = """
WITH publisher AS (
    INSERT INTO publishers (id, name) VALUES ($1, $2)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, name
), token AS (
    INSERT INTO publisher_tokens (id, publisher_id, token_hash)
    SELECT $3, id, $4 FROM publisher
    RETURNING id
)
SELECT publisher.id, publisher.name, token.id AS token_id FROM publisher, token
"""


async def insert_publisher(db: Executor, name: str, token_id: UUID, token_hash: str) -> Row:
    return await _with_new_id(db, INSERT_PUBLISHER, name, token_id, token_hash)


async def publisher_exists(db: Executor, publisher_id: int) -> bool:
    found = await db.fetchval("SELECT true FROM publishers WHERE id = $1", publisher_id)
    return found is not None


# Publisher tokens --------------------------------------------------------------------------------

# Where a revoked token's id is announced, to every process that keeps tokens in memory
# (`app.admin.tokens`). PostgreSQL sends it when the revoking transaction commits, never before.
TOKENS_CHANNEL = "storekit_sync_publisher_tokens"
MAX_TOKENS_PER_PUBLISHER = 20

TOKEN_BY_HASH = """
SELECT id, publisher_id, token_hash FROM publisher_tokens WHERE token_hash = $1
"""  # noqa: S105 (a statement)


async def token_by_hash(db: Executor, digest: str) -> Row | None:
    return await db.fetchrow(TOKEN_BY_HASH, digest)


# Taken before counting a publisher's tokens, so that two concurrent creations count in turn.
# NO KEY UPDATE: the rows that refer to the publisher (syncs, customers) can still be written.
LOCK_PUBLISHER = "SELECT id FROM publishers WHERE id = $1 FOR NO KEY UPDATE"

# Another token, unless the publisher has MAX_TOKENS_PER_PUBLISHER already. $1 publisher,
# $2 token id, $3 token hash, $4 the limit.
INSERT_TOKEN = """
INSERT INTO publisher_tokens (id, publisher_id, token_hash)
SELECT $2, $1, $3
WHERE (SELECT count(*) FROM publisher_tokens WHERE publisher_id = $1) < $4
RETURNING id, created_at
"""  # noqa: S105 (a statement)


async def insert_token(tx: Executor, publisher_id: int, token_id: UUID, digest: str) -> Row | None:
    """A new token of the publisher; None when it has as many as it may (in a transaction)."""
    await tx.execute(LOCK_PUBLISHER, publisher_id)
    return await tx.fetchrow(INSERT_TOKEN, publisher_id, token_id, digest, MAX_TOKENS_PER_PUBLISHER)


TOKENS = """
SELECT id, created_at, last_used_at FROM publisher_tokens WHERE publisher_id = $1
ORDER BY created_at, id
"""


async def tokens(db: Executor, publisher_id: int) -> list[Row]:
    return list(await db.fetch(TOKENS, publisher_id))


# The token is deleted and its id announced on TOKENS_CHANNEL, sent when this commits.
REVOKE_TOKEN = f"""
WITH gone AS (
    DELETE FROM publisher_tokens WHERE publisher_id = $1 AND id = $2 RETURNING id
)
SELECT id, pg_notify('{TOKENS_CHANNEL}', id::text) FROM gone
"""  # noqa: S608 (a constant)


async def revoke_token(db: Executor, publisher_id: int, token_id: UUID) -> bool:
    """Delete the publisher's token and tell every process; False when it has no such token."""
    return await db.fetchrow(REVOKE_TOKEN, publisher_id, token_id) is not None


# When tokens were used, at most one write per token a minute whatever the number of processes:
# a row already touched in the last minute is left as it is. $1 ids, $2 when each was used.
TOUCH_TOKENS = """
UPDATE publisher_tokens AS t SET last_used_at = u.used_at
FROM unnest($1::uuid[], $2::timestamptz[]) AS u (id, used_at)
WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at <= u.used_at - interval '1 minute')
"""


async def touch_tokens(db: Executor, used: dict[UUID, datetime]) -> None:
    await db.execute(TOUCH_TOKENS, list(used), list(used.values()))


APP_COLUMNS = (
    "publisher_id, bundle_id, app_apple_id, issuer_id, key_id, environment, created_at, updated_at"
)
APPS_ORDER = "created_at, bundle_id"  # the order a sync asks them in, oldest first

# Switch the integration on (made on a publisher's first app), and set its ownership policy ($2;
# NULL: as it is, `transfer` for a new one).
ACTIVATE = """
INSERT INTO storekit2_integrations AS i (publisher_id, active, ownership)
VALUES ($1, true, coalesce($2, 'transfer'))
ON CONFLICT (publisher_id) DO UPDATE SET active = true,
    ownership = coalesce($2, i.ownership), updated_at = now()
RETURNING ownership
"""

PUT_APP = f"""
INSERT INTO storekit2_apps (publisher_id, bundle_id, app_apple_id, issuer_id, key_id,
    private_key_encrypted, environment)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (publisher_id, bundle_id) DO UPDATE SET app_apple_id = excluded.app_apple_id,
    issuer_id = excluded.issuer_id, key_id = excluded.key_id,
    private_key_encrypted = excluded.private_key_encrypted, environment = excluded.environment,
    updated_at = now()
RETURNING {APP_COLUMNS}
"""  # noqa: S608 (constants)


@dataclass(frozen=True)
class NewApp:
    bundle_id: str
    app_apple_id: int | None
    issuer_id: str
    key_id: str
    private_key_encrypted: bytes
    environment: str


async def put_app(
    db: Executor, publisher_id: int, new: NewApp, ownership: str | None
) -> tuple[Row, str]:
    """Add or replace the app, switch the integration on and set its policy (in the caller's
    transaction); the app as stored, and the policy."""
    policy = str(await db.fetchval(ACTIVATE, publisher_id, ownership))
    values = (new.bundle_id, new.app_apple_id, new.issuer_id, new.key_id)
    row = await db.fetchrow(
        PUT_APP, publisher_id, *values, new.private_key_encrypted, new.environment
    )
    assert row is not None
    return row, policy


INTEGRATION = (
    "SELECT publisher_id, active, ownership FROM storekit2_integrations WHERE publisher_id = $1"
)
LOCK_INTEGRATION = f"{INTEGRATION} FOR UPDATE"
APPS = f"SELECT {APP_COLUMNS} FROM storekit2_apps WHERE publisher_id = $1 ORDER BY {APPS_ORDER}"  # noqa: S608


async def integration(db: Executor, publisher_id: int) -> Row | None:
    return await db.fetchrow(INTEGRATION, publisher_id)


async def lock_integration(db: Executor, publisher_id: int) -> Row | None:
    """The integration, locked until the transaction ends: its apps change one change at a time."""
    return await db.fetchrow(LOCK_INTEGRATION, publisher_id)


async def apps(db: Executor, publisher_id: int) -> list[Row]:
    """The publisher's apps, oldest first, without their keys."""
    return list(await db.fetch(APPS, publisher_id))


ACTIVE_APPS = f"""
SELECT {", ".join(f"a.{name}" for name in APP_FIELDS)}
FROM storekit2_integrations AS i
JOIN storekit2_apps AS a ON a.publisher_id = i.publisher_id
WHERE i.publisher_id = $1 AND i.active
ORDER BY a.created_at, a.bundle_id
"""  # noqa: S608


async def active_apps(db: Executor, publisher_id: int) -> list[Row]:
    """The apps of an active integration with their sealed keys, to build
    `app.apple.gateway.AppleApp`s; none when the integration is off."""
    return list(await db.fetch(ACTIVE_APPS, publisher_id))


# Every app of every active integration, with when its integration was created (where the
# reconciliation's first look at Apple's history starts).
ALL_ACTIVE_APPS = f"""
SELECT {", ".join(f"a.{name}" for name in APP_FIELDS)}, i.created_at AS integration_created_at
FROM storekit2_integrations AS i
JOIN storekit2_apps AS a ON a.publisher_id = i.publisher_id
WHERE i.active
ORDER BY a.publisher_id, a.created_at, a.bundle_id
"""  # noqa: S608


async def all_active_apps(db: Executor) -> list[Row]:
    return list(await db.fetch(ALL_ACTIVE_APPS))


# Remove every app and switch the integration off; its publisher, or nothing when it has none.
REMOVE_APPS = """
WITH integration AS (
    UPDATE storekit2_integrations SET active = false, updated_at = now()
    WHERE publisher_id = $1 RETURNING publisher_id
), removed AS (
    DELETE FROM storekit2_apps WHERE publisher_id IN (SELECT publisher_id FROM integration)
)
SELECT publisher_id FROM integration
"""


async def remove_apps(db: Executor, publisher_id: int) -> bool:
    return await db.fetchval(REMOVE_APPS, publisher_id) is not None


DELETE_APP = (
    "DELETE FROM storekit2_apps WHERE publisher_id = $1 AND bundle_id = $2 RETURNING bundle_id"
)
DEACTIVATE_IF_EMPTY = """
UPDATE storekit2_integrations SET active = false, updated_at = now()
WHERE publisher_id = $1 AND NOT EXISTS (SELECT 1 FROM storekit2_apps WHERE publisher_id = $1)
"""


async def delete_app(db: Executor, publisher_id: int, bundle_id: str) -> bool:
    """Remove one app (the integration locked by the caller); the last one switches the
    integration off. False when the publisher has no such app."""
    if await db.fetchval(DELETE_APP, publisher_id, bundle_id) is None:
        return False
    await db.execute(DEACTIVATE_IF_EMPTY, publisher_id)
    return True


# Rotating the secrets at rest (`storekit-sync rotate-secrets`): every app's private key, a batch
# at a time in the order of their keys, each replaced only if it is still what was read.
SEALED_KEYS = """
SELECT publisher_id, bundle_id, private_key_encrypted FROM storekit2_apps
WHERE (publisher_id, bundle_id) > ($1, $2) ORDER BY publisher_id, bundle_id LIMIT $3
"""
SEALED_KEY = """
SELECT publisher_id, bundle_id, private_key_encrypted FROM storekit2_apps
WHERE publisher_id = $1 AND bundle_id = $2
"""
RESEAL_KEY = """
UPDATE storekit2_apps SET private_key_encrypted = $4
WHERE publisher_id = $1 AND bundle_id = $2 AND private_key_encrypted = $3
RETURNING publisher_id
"""


async def sealed_keys(db: Executor, after: tuple[int, str], limit: int) -> list[Row]:
    """The apps after `after` (publisher, bundle id), in that order."""
    return list(await db.fetch(SEALED_KEYS, *after, limit))


async def sealed_key(db: Executor, publisher_id: int, bundle_id: str) -> Row | None:
    return await db.fetchrow(SEALED_KEY, publisher_id, bundle_id)


async def reseal_key(
    db: Executor, publisher_id: int, bundle_id: str, old: bytes, new: bytes
) -> bool:
    """Replace the app's sealed private key, unless it changed since it was read (the app is
    otherwise left as it is: no new `updated_at`, so Apple's clients are not made again)."""
    return await db.fetchval(RESEAL_KEY, publisher_id, bundle_id, old, new) is not None


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


CUSTOMER_COLUMNS = "id, publisher_id, email, external_id, app_account_token, created_at"

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
