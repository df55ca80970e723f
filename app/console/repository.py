"""What the operator console reads, and only reads: every statement bounded by a limit and served
by an index that leads with what it looks up (`tests/console/test_plans.py` holds them to it).

Where a publisher is given ($n NULL: the admin, every publisher), each lookup is filtered by it.
A lookup with no column of its own to lead an index (an email, a synchronization id, for the admin)
walks the publishers and probes each one's key: as many probes as there are publishers. A lookup of
several keys takes them one by one (`unnest` and a `LATERAL` subquery with a `LIMIT`, which keeps
the planner from turning it into a join), each through the index that fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.db import Executor, Row
from app.enums import DeliveryStatus, JobKind, SyncStatus
from app.subscriptions.model import COLUMNS as SUBSCRIPTION_COLUMNS
from app.webhooks.schemas import MAX_ENDPOINTS_PER_TOPIC

SEARCH_LIMIT = 20
TIMELINE_LIMIT = 50
EVENT_LIMIT = 100
ATTEMPT_LIMIT = 20  # per delivery on a timeline; a delivery's own page shows more
DELIVERY_ATTEMPT_LIMIT = 200
PUBLISHER_LIMIT = 200
APP_LIMIT = 100

_FINALIZED = f"'{SyncStatus.FINALIZED}'"
_UNFINALIZED = f"status <> {_FINALIZED}"

SYNC_COLUMNS = (
    "s.publisher_id, s.id, s.kind, s.caller, s.bundle_id, s.transaction_id, s.customer_id,"
    " s.ip_address,"
    " s.correlation_id, s.status, s.attempts, s.result, s.access_granted, s.offer_id,"
    " s.original_transaction_id, s.subscription_id, s.last_error, s.created_at, s.updated_at,"
    " s.apple_data"
)
CUSTOMER_COLUMNS = "c.id, c.publisher_id, c.email, c.external_id, c.app_account_token, c.created_at"
SUBSCRIPTION_SELECT = ", ".join(f"b.{name}" for name in SUBSCRIPTION_COLUMNS)
NOTIFICATION_COLUMNS = (
    "n.id, n.notification_uuid, n.notification_type, n.subtype, n.environment,"
    " n.original_transaction_id, n.transaction_id, n.signed_at, n.received_at, n.status,"
    " n.outcome, n.subscription_id, n.applied_at, n.apple_status, n.transaction_info,"
    " n.renewal_info, n.source"
)
EVENT_COLUMNS = "e.id, e.publisher_id, e.topic, e.payload, e.synchronization_id, e.created_at"
DELIVERY_COLUMNS = (
    "d.id, d.publisher_id, d.event_id, d.topic, d.url, d.webhook_id, d.status, d.attempts,"
    " d.last_status_code, d.last_error, d.next_attempt_at, d.created_at, d.updated_at"
)

# Search -------------------------------------------------------------------------------------------

# $1 customer id, $2 publisher (NULL: any).
CUSTOMER_BY_ID = f"""
SELECT {CUSTOMER_COLUMNS}, p.name AS publisher_name
FROM customers AS c JOIN publishers AS p ON p.id = c.publisher_id
WHERE c.id = $1 AND ($2::bigint IS NULL OR c.publisher_id = $2)
"""  # noqa: S608 (constants)

# $1 email, $2 publisher (NULL: each publisher in turn; one customer each at most).
CUSTOMERS_BY_EMAIL = f"""
SELECT {CUSTOMER_COLUMNS}, p.name AS publisher_name
FROM publishers AS p
CROSS JOIN LATERAL (
    SELECT * FROM customers WHERE publisher_id = p.id AND email = $1 LIMIT 1
) AS c
WHERE $2::bigint IS NULL OR p.id = $2
ORDER BY c.id
LIMIT {SEARCH_LIMIT}
"""  # noqa: S608

# $1 transaction id, $2 publisher (NULL: any). Syncs of it, newest first.
SYNCS_BY_TRANSACTION = f"""
SELECT {SYNC_COLUMNS} FROM synchronizations AS s
WHERE s.transaction_id = $1 AND ($2::bigint IS NULL OR s.publisher_id = $2)
ORDER BY s.created_at DESC
LIMIT {SEARCH_LIMIT}
"""  # noqa: S608

# $1 an original or latest transaction id, $2 publisher (NULL: any). The purchases it names.
PURCHASES_BY_TRANSACTION = f"""
SELECT DISTINCT publisher_id, original_transaction_id FROM (
    SELECT publisher_id, original_transaction_id FROM subscriptions
    WHERE original_transaction_id = $1 AND ($2::bigint IS NULL OR publisher_id = $2)
    UNION ALL
    SELECT publisher_id, original_transaction_id FROM subscriptions
    WHERE latest_transaction_id = $1 AND ($2::bigint IS NULL OR publisher_id = $2)
    UNION ALL
    SELECT publisher_id, original_transaction_id FROM synchronizations
    WHERE original_transaction_id = $1 AND status = {_FINALIZED}
        AND ($2::bigint IS NULL OR publisher_id = $2)
) AS found
LIMIT {SEARCH_LIMIT}
"""  # noqa: S608

# $1 synchronization id, $2 publisher (NULL: each publisher in turn, by its key).
SYNC_BY_ID = f"""
SELECT {SYNC_COLUMNS}
FROM publishers AS p
CROSS JOIN LATERAL (
    SELECT * FROM synchronizations WHERE publisher_id = p.id AND id = $1 LIMIT 1
) AS s
WHERE $2::bigint IS NULL OR p.id = $2
LIMIT {SEARCH_LIMIT}
"""  # noqa: S608


async def customer(db: Executor, customer_id: int, publisher_id: int | None) -> Row | None:
    return await db.fetchrow(CUSTOMER_BY_ID, customer_id, publisher_id)


async def customers_by_email(db: Executor, email: str, publisher_id: int | None) -> list[Row]:
    """As typed, and lower-cased when that differs."""
    found: list[Row] = []
    for variant in dict.fromkeys([email, email.lower()]):
        found += await db.fetch(CUSTOMERS_BY_EMAIL, variant, publisher_id)
    return found


async def syncs_by_transaction(
    db: Executor, transaction_id: str, publisher_id: int | None
) -> list[Row]:
    return list(await db.fetch(SYNCS_BY_TRANSACTION, transaction_id, publisher_id))


async def purchases_by_transaction(
    db: Executor, transaction_id: str, publisher_id: int | None
) -> list[Row]:
    return list(await db.fetch(PURCHASES_BY_TRANSACTION, transaction_id, publisher_id))


async def syncs_by_id(db: Executor, sync_id: str, publisher_id: int | None) -> list[Row]:
    return list(await db.fetch(SYNC_BY_ID, sync_id, publisher_id))


# Timelines ----------------------------------------------------------------------------------------

# $1 publisher, $2 customer: its syncs, newest first.
CUSTOMER_SYNCS = f"""
SELECT {SYNC_COLUMNS} FROM synchronizations AS s
WHERE s.customer_id = $2 AND s.publisher_id = $1
ORDER BY s.created_at DESC
LIMIT {TIMELINE_LIMIT}
"""  # noqa: S608

# $1 publisher, $2 customer: its subscriptions, newest first.
CUSTOMER_SUBSCRIPTIONS = f"""
SELECT {SUBSCRIPTION_SELECT} FROM subscriptions AS b
WHERE b.customer_id = $2 AND b.publisher_id = $1
ORDER BY b.id DESC
LIMIT {TIMELINE_LIMIT}
"""  # noqa: S608

# $1 publisher, $2 purchase: its syncs (those finalized, and one still running), newest first.
PURCHASE_SYNCS = f"""
SELECT {SYNC_COLUMNS} FROM (
    SELECT * FROM synchronizations
    WHERE original_transaction_id = $2 AND publisher_id = $1 AND status = {_FINALIZED}
    UNION ALL
    SELECT * FROM synchronizations
    WHERE purchase_key = $2 AND publisher_id = $1 AND {_UNFINALIZED}
) AS s
ORDER BY s.created_at DESC
LIMIT {TIMELINE_LIMIT}
"""  # noqa: S608

# $1 publisher, $2 purchase: its subscriptions (one per owner it had), newest first.
PURCHASE_SUBSCRIPTIONS = f"""
SELECT {SUBSCRIPTION_SELECT} FROM subscriptions AS b
WHERE b.original_transaction_id = $2 AND b.publisher_id = $1
ORDER BY b.id DESC
LIMIT {TIMELINE_LIMIT}
"""  # noqa: S608

# $1 publisher, $2 purchases: what Apple sent about them, newest first.
NOTIFICATIONS = f"""
SELECT {NOTIFICATION_COLUMNS}
FROM unnest($2::text[]) AS purchase (original)
CROSS JOIN LATERAL (
    SELECT * FROM apple_notifications
    WHERE publisher_id = $1 AND original_transaction_id = purchase.original
    ORDER BY received_at DESC, id DESC LIMIT {TIMELINE_LIMIT}
) AS n
ORDER BY n.received_at DESC, n.id DESC
LIMIT {TIMELINE_LIMIT}
"""  # noqa: S608

# $1 publisher, $2 synchronization ids, $3 subscription ids (as text, as the payload holds them):
# the events of those syncs and of those subscriptions, newest first.
EVENTS = f"""
SELECT * FROM (
    SELECT {EVENT_COLUMNS}
    FROM unnest($2::text[]) AS sync (id)
    CROSS JOIN LATERAL (
        SELECT * FROM webhook_events
        WHERE synchronization_id = sync.id AND publisher_id = $1 LIMIT {EVENT_LIMIT}
    ) AS e
    UNION
    SELECT {EVENT_COLUMNS}
    FROM unnest($3::text[]) AS subscription (id)
    CROSS JOIN LATERAL (
        SELECT * FROM webhook_events
        WHERE (payload ->> 'subscriptionId') = subscription.id AND publisher_id = $1
        LIMIT {EVENT_LIMIT}
    ) AS e
) AS e
ORDER BY e.created_at DESC, e.id DESC
LIMIT {EVENT_LIMIT}
"""  # noqa: S608

# $1 events: their deliveries (one per endpoint subscribed to the topic then), in order.
DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS}
FROM unnest($1::bigint[]) AS event (id)
CROSS JOIN LATERAL (
    SELECT * FROM webhook_deliveries WHERE event_id = event.id
    ORDER BY id LIMIT {MAX_ENDPOINTS_PER_TOPIC}
) AS d
ORDER BY d.id
"""  # noqa: S608

# $1 deliveries, $2 how many of each's newest attempts.
ATTEMPTS = """
SELECT a.delivery_id, a.id, a.attempted_at, a.status_code, a.error, a.duration_ms
FROM unnest($1::bigint[]) AS wanted (id)
CROSS JOIN LATERAL (
    SELECT * FROM webhook_delivery_attempts
    WHERE delivery_id = wanted.id ORDER BY id DESC LIMIT $2
) AS a
ORDER BY a.delivery_id, a.id
"""

# $1 publisher, $2 synchronization id: the sync, with what Apple said.
SYNC = f"""
SELECT {SYNC_COLUMNS} FROM synchronizations AS s WHERE s.publisher_id = $1 AND s.id = $2
"""  # noqa: S608

# $1 publisher, $2 delivery: the delivery and its event.
DELIVERY = f"""
SELECT {DELIVERY_COLUMNS}, e.payload, e.synchronization_id, e.created_at AS event_created_at
FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_id
WHERE d.id = $2 AND d.publisher_id = $1
"""  # noqa: S608


async def customer_syncs(db: Executor, publisher_id: int, customer_id: int) -> list[Row]:
    return list(await db.fetch(CUSTOMER_SYNCS, publisher_id, customer_id))


async def customer_subscriptions(db: Executor, publisher_id: int, customer_id: int) -> list[Row]:
    return list(await db.fetch(CUSTOMER_SUBSCRIPTIONS, publisher_id, customer_id))


async def purchase_syncs(db: Executor, publisher_id: int, original: str) -> list[Row]:
    return list(await db.fetch(PURCHASE_SYNCS, publisher_id, original))


async def purchase_subscriptions(db: Executor, publisher_id: int, original: str) -> list[Row]:
    return list(await db.fetch(PURCHASE_SUBSCRIPTIONS, publisher_id, original))


async def notifications(db: Executor, publisher_id: int, originals: Sequence[str]) -> list[Row]:
    if not originals:
        return []
    return list(await db.fetch(NOTIFICATIONS, publisher_id, list(originals)))


async def events(
    db: Executor, publisher_id: int, sync_ids: Sequence[str], subscription_ids: Sequence[int]
) -> list[Row]:
    if not sync_ids and not subscription_ids:
        return []
    subscriptions = [str(i) for i in subscription_ids]
    return list(await db.fetch(EVENTS, publisher_id, list(sync_ids), subscriptions))


async def deliveries(db: Executor, event_ids: Sequence[int]) -> list[Row]:
    if not event_ids:
        return []
    return list(await db.fetch(DELIVERIES, list(event_ids)))


async def attempts(
    db: Executor, delivery_ids: Sequence[int], limit: int = ATTEMPT_LIMIT
) -> list[Row]:
    if not delivery_ids:
        return []
    return list(await db.fetch(ATTEMPTS, list(delivery_ids), limit))


async def sync(db: Executor, publisher_id: int, sync_id: str) -> Row | None:
    return await db.fetchrow(SYNC, publisher_id, sync_id)


async def delivery(db: Executor, publisher_id: int, delivery_id: int) -> Row | None:
    return await db.fetchrow(DELIVERY, publisher_id, delivery_id)


# Publishers ---------------------------------------------------------------------------------------

# The first publishers by name, each with its integration and the bundle ids of its apps.
PUBLISHERS = f"""
SELECT p.id, p.name, p.created_at, i.active, i.ownership,
    array(SELECT bundle_id FROM storekit2_apps WHERE publisher_id = p.id
          ORDER BY bundle_id LIMIT {APP_LIMIT}) AS bundle_ids
FROM publishers AS p LEFT JOIN storekit2_integrations AS i ON i.publisher_id = p.id
ORDER BY p.name, p.id
LIMIT {PUBLISHER_LIMIT}
"""  # noqa: S608

PUBLISHER = """
SELECT p.id, p.name, p.created_at, i.active, i.ownership, i.updated_at AS integration_updated_at
FROM publishers AS p LEFT JOIN storekit2_integrations AS i ON i.publisher_id = p.id
WHERE p.id = $1
"""

# A publisher's apps, never their keys.
APPS = f"""
SELECT bundle_id, app_apple_id, environment, created_at, updated_at FROM storekit2_apps
WHERE publisher_id = $1 ORDER BY created_at, bundle_id LIMIT {APP_LIMIT}
"""  # noqa: S608

ENDPOINTS = """
SELECT topic, url, active, disabled_at FROM webhook_endpoints
WHERE publisher_id = $1 ORDER BY topic, position, id
"""

# The publisher's token hashes that are valid now: a console session lives only as long as one
# (a revoked token ends the sessions it opened at their next request).
TOKEN_HASHES = "SELECT token_hash FROM publisher_tokens WHERE publisher_id = $1"  # noqa: S105


async def publishers(db: Executor) -> list[Row]:
    return list(await db.fetch(PUBLISHERS))


async def publisher(db: Executor, publisher_id: int) -> Row | None:
    return await db.fetchrow(PUBLISHER, publisher_id)


async def apps(db: Executor, publisher_id: int) -> list[Row]:
    return list(await db.fetch(APPS, publisher_id))


async def endpoints(db: Executor, publisher_id: int) -> list[Row]:
    return list(await db.fetch(ENDPOINTS, publisher_id))


async def token_hashes(db: Executor, publisher_id: int) -> list[str]:
    return [str(row["token_hash"]) for row in await db.fetch(TOKEN_HASHES, publisher_id)]


# The overview's figures of now --------------------------------------------------------------------

# $1 publisher: its syncs not finalized, by status, with the oldest's creation.
BACKLOG_SYNCS = f"""
SELECT status, count(*) AS n, min(created_at) AS oldest FROM synchronizations
WHERE publisher_id = $1 AND {_UNFINALIZED}
GROUP BY status
"""  # noqa: S608

# $1 publisher: its deliveries still pending, with the oldest's creation. Found through the
# queue, which holds what is pending now (a job per delivery), never the history.
BACKLOG_DELIVERIES = f"""
SELECT count(DISTINCT d.id) AS n, min(d.created_at) AS oldest
FROM jobs AS j
CROSS JOIN LATERAL (
    SELECT * FROM webhook_deliveries
    WHERE id = (j.payload ->> 'deliveryId')::bigint AND publisher_id = $1
        AND status = '{DeliveryStatus.PENDING}'
    LIMIT 1
) AS d
WHERE j.kind = '{JobKind.WEBHOOK_DELIVERY}'
"""  # noqa: S608


async def backlog(db: Executor, publisher_id: int) -> dict[str, Any]:
    """A publisher's share of the queue: syncs not finalized and deliveries pending."""
    syncs = await db.fetch(BACKLOG_SYNCS, publisher_id)
    deliveries = await db.fetchrow(BACKLOG_DELIVERIES, publisher_id)
    assert deliveries is not None
    return {
        "syncs": {str(r["status"]): (int(r["n"]), r["oldest"]) for r in syncs},
        "deliveries": (int(deliveries["n"]), deliveries["oldest"]),
    }
