"""Every page's statements are bounded and read through indexes that lead with what they look up,
even as planned on empty tables (see tests/purchases/test_plans.py): no page reads a whole table,
nor every row of a publisher. The walk over publishers (a lookup with no column of its own to lead
an index, for the admin; the list of publishers with their integrations) and the queue (what is
pending now) are the scans allowed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.activity import repository as activity
from app.console import repository as console
from app.db import with_database
from app.migrate import migrate
from tests.helpers.db import create_database, drop_database
from tests.helpers.plans import generic_scans

NOW = datetime(2031, 1, 1, tzinfo=UTC)
WALKED = {"publishers", "storekit2_integrations", "jobs"}  # one integration per publisher


@pytest.fixture(scope="module")
def empty_url(server_url: str) -> Iterator[str]:
    """A migrated database of its own, whose tables stay empty."""
    name = f"sks_plans_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    url = with_database(server_url, name)
    migrate(url)
    yield url
    asyncio.run(drop_database(server_url, name))


# Partial indexes of what is pending now (all of a publisher's entries are its backlog), and a
# publisher's apps (a handful).
BOUNDED = {"uq_synchronizations_active_transaction", "pk_storekit2_apps"}


def _plan(url: str, sql: str, arguments: list[object]) -> set[tuple[str, str | None]]:
    scans = asyncio.run(generic_scans(url, sql, arguments))
    for scan in scans:
        if scan["Relation Name"] in WALKED:
            continue
        assert scan["Node Type"] != "Seq Scan", scan
        condition = scan.get("Index Cond", "")
        if scan["Index Name"] not in BOUNDED:
            assert condition and condition not in (
                "(publisher_id = $1)",
                "(publisher_id = p.id)",
            ), scan
    return {(s["Relation Name"], s.get("Index Name")) for s in scans}


CASES: dict[str, tuple[str, list[object], set[tuple[str, str | None]]]] = {
    "customer by id": (
        console.CUSTOMER_BY_ID,
        [1, None],
        {("customers", "pk_customers"), ("publishers", "pk_publishers")},
    ),
    "customers by email, each publisher": (
        console.CUSTOMERS_BY_EMAIL,
        ["a@example.com", None],
        {("publishers", None), ("customers", "uq_customers_publisher_email")},
    ),
    "syncs by transaction": (
        console.SYNCS_BY_TRANSACTION,
        ["2000", None],
        {("synchronizations", "ix_synchronizations_transaction")},
    ),
    "purchases by transaction": (
        console.PURCHASES_BY_TRANSACTION,
        ["2000", 1],
        {
            ("subscriptions", "ix_subscriptions_purchase"),
            ("subscriptions", "ix_subscriptions_latest_transaction"),
            ("synchronizations", "ix_synchronizations_purchase"),
        },
    ),
    "sync by id, each publisher": (
        console.SYNC_BY_ID,
        ["s", None],
        {("publishers", None), ("synchronizations", "pk_synchronizations")},
    ),
    "a customer's syncs": (
        console.CUSTOMER_SYNCS,
        [1, 2],
        {("synchronizations", "ix_synchronizations_customer")},
    ),
    "a customer's subscriptions": (
        console.CUSTOMER_SUBSCRIPTIONS,
        [1, 2],
        {("subscriptions", "ix_subscriptions_customer")},
    ),
    "a purchase's syncs": (
        console.PURCHASE_SYNCS,
        [1, "2000"],
        {
            ("synchronizations", "ix_synchronizations_purchase"),
            ("synchronizations", "uq_synchronizations_active_purchase"),
        },
    ),
    "a purchase's subscriptions": (
        console.PURCHASE_SUBSCRIPTIONS,
        [1, "2000"],
        {("subscriptions", "ix_subscriptions_purchase")},
    ),
    "notifications of purchases": (
        console.NOTIFICATIONS,
        [1, ["2000"]],
        {("apple_notifications", "ix_apple_notifications_purchase")},
    ),
    "events of syncs and subscriptions": (
        console.EVENTS,
        [1, ["s"], ["100000001"]],
        {
            ("webhook_events", "ix_webhook_events_sync"),
            ("webhook_events", "ix_webhook_events_subscription"),
        },
    ),
    "deliveries of events": (
        console.DELIVERIES,
        [[1, 2]],
        {("webhook_deliveries", "ix_webhook_deliveries_event_id")},
    ),
    "newest attempts of deliveries": (
        console.ATTEMPTS,
        [[1, 2], 20],
        {("webhook_delivery_attempts", "ix_webhook_delivery_attempts_delivery")},
    ),
    "a sync": (console.SYNC, [1, "s"], {("synchronizations", "pk_synchronizations")}),
    "a delivery": (
        console.DELIVERY,
        [1, 2],
        {
            ("webhook_deliveries", "ix_webhook_deliveries_publisher"),
            ("webhook_events", "pk_webhook_events"),
        },
    ),
    "a publisher's syncs not finalized": (
        console.BACKLOG_SYNCS,
        [1],
        {("synchronizations", "uq_synchronizations_active_transaction")},
    ),
    # Each job's delivery by its id and publisher. On empty tables the generic plan may take the
    # partial index of unsettled deliveries (/metrics' count) instead: as bounded, and with
    # statistics (300,000 deliveries, 3,000 pending) the planner takes the publisher's index.
    "a publisher's pending deliveries, through the queue": (
        console.BACKLOG_DELIVERIES,
        [1],
        {("jobs", None), ("webhook_deliveries", "ix_webhook_deliveries_publisher")},
    ),
    "a publisher's apps": (console.APPS, [1], {("storekit2_apps", "pk_storekit2_apps")}),
    "the first publishers, with their apps": (
        console.PUBLISHERS,
        [],
        {
            ("publishers", None),
            ("storekit2_integrations", None),
            ("storekit2_apps", "pk_storekit2_apps"),
        },
    ),
    "a chart's rows": (
        activity.SERIES,
        [0, ["sync"], NOW, timedelta(minutes=15), NOW + timedelta(days=1)],
        {("activity_minutes", "pk_activity_minutes")},
    ),
}


ALSO: dict[tuple[str, str | None], tuple[str, str | None]] = {  # taken instead on empty tables
    ("webhook_deliveries", "ix_webhook_deliveries_publisher"): (
        "webhook_deliveries",
        "ix_webhook_deliveries_unsettled",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_page_statement_reads_through_an_index(empty_url: str, case: str) -> None:
    sql, arguments, expected = CASES[case]
    alternative = {ALSO.get(scan, scan) for scan in expected}
    assert _plan(empty_url, sql, arguments) in (expected, alternative)
