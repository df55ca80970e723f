"""The hot statements keep good plans when they are planned on empty tables.

asyncpg (and SQLAlchemy through it) prepares each statement once per connection, and PostgreSQL
settles on a generic plan after a few executions. A service that starts on a new database makes
that plan while the tables are nearly empty, when any index that starts with the columns a lookup
names costs the planner the same; the plan then stays while the tables grow. So each lookup must
have only indexes that fit it whole, and no scan may stop at `publisher_id`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.migrate import migrate
from app.purchases.repository import LOAD, LOCK, REGISTER, SETTLING
from app.subscriptions.repository import ENTITLING, LATEST
from tests.helpers.plans import generic_scans

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def empty_url(scratch_url: str) -> str:
    migrate(scratch_url)
    return scratch_url


def _plan(url: str, sql: str, arguments: list[object]) -> set[tuple[str, str | None]]:
    scans = asyncio.run(generic_scans(url, sql, arguments))
    for scan in scans:
        assert scan["Node Type"] != "Seq Scan", scan
        # A scan that stops at the publisher reads every row of the publisher.
        assert scan.get("Index Cond") != "(publisher_id = $1)" or scan["Index Name"].startswith(
            "pk_storekit2"
        ), scan
    return {(s["Relation Name"], s.get("Index Name")) for s in scans}


@pytest.mark.parametrize(
    ("bundle_id", "since", "caller"),
    [(None, None, "publisher"), ("com.acme.tv", NOW, "customer")],
)
def test_the_register_reads_one_row_per_lookup(
    empty_url: str, bundle_id: str | None, since: datetime | None, caller: str
) -> None:
    """A customer token's failures are one row by key (and not read at all for a publisher)."""
    found = [1, 2, "3", "4", bundle_id, since, 19]
    arguments: list[object] = [*found, "register", None, "h", NOW, "4", caller]
    assert _plan(empty_url, REGISTER, arguments) == {
        ("storekit2_integrations", "pk_storekit2_integrations"),
        ("storekit2_apps", "pk_storekit2_apps"),
        ("register_failures", "pk_register_failures"),
        ("customers", "pk_customers"),
        ("subscriptions", "uq_subscriptions_current_purchase"),
        ("subscriptions", "ix_subscriptions_latest_transaction"),
        ("synchronizations", "ix_synchronizations_transaction"),
        ("synchronizations", "pk_synchronizations"),
    }


def test_the_sync_loads_by_key(empty_url: str) -> None:
    """The sync, its integration, its apps, and the app of the purchase it names."""
    assert _plan(empty_url, LOAD, [1, "s"]) == {
        ("synchronizations", "pk_synchronizations"),
        ("storekit2_integrations", "pk_storekit2_integrations"),
        ("storekit2_apps", "pk_storekit2_apps"),
        ("subscriptions", "ix_subscriptions_purchase"),
    }


def test_the_latest_subscription_by_its_purchase(empty_url: str) -> None:
    assert _plan(empty_url, LATEST, [1, "2"]) <= {
        ("subscriptions", "uq_subscriptions_current_purchase"),
        ("subscriptions", "ix_subscriptions_purchase"),
    }


def test_an_entitlement_by_customer_and_offer(empty_url: str) -> None:
    arguments: list[object] = [1, 2, "S1", NOW, "active"]
    assert _plan(empty_url, ENTITLING, arguments) == {
        ("subscriptions", "ix_subscriptions_customer")
    }


def test_the_finalize_reads_by_key(empty_url: str) -> None:
    assert _plan(empty_url, LOCK, [1, "s"]) == {("synchronizations", "pk_synchronizations")}
    assert _plan(empty_url, SETTLING, [1, "p", "2", 3]) == {
        ("offer_products", "pk_offer_products"),
        ("apple_notifications", "ix_apple_notifications_purchase"),
        ("storekit2_integrations", "pk_storekit2_integrations"),
        ("customers", "pk_customers"),
    }
