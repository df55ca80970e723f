"""The finalize's own statements write what the models would (app.purchases.finalizing)."""

from __future__ import annotations

from app.models import Subscription, Synchronization, table
from app.purchases.finalizing import SAVE_SYNC, WRITTEN


def test_its_statements_need_no_default_the_rules_do_not_set() -> None:
    """A column added later with a default would be written NULL by the finalize: it must be
    given its value in `ownership` (as `refresh` does these two), and then listed here."""
    columns = table(Subscription).columns
    assert all(column.key == column.name for column in columns)
    defaulted = {c.name for c in columns if c.default is not None or c.server_default is not None}
    assert defaulted - {"id"} == {"auto_renew", "in_trial"}
    assert set(WRITTEN) == {column.name for column in columns} - {"id"}


def test_a_sync_is_saved_with_every_column_a_rule_may_change() -> None:
    fixed = {"publisher_id", "id", "kind", "transaction_id", "purchase_key", "customer_id"}
    fixed |= {"ip_address", "correlation_id", "request_hash", "created_at"}
    columns = table(Synchronization).columns
    assert all(column.key == column.name for column in columns)
    for name in {column.name for column in columns} - fixed:
        assert f"{name} = $" in SAVE_SYNC, name
