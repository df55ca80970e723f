"""Every statement of every repository prepares on the migrated database (its tables, columns and
types exist as written), and the records the repositories map rows to have the tables' columns."""

from __future__ import annotations

import importlib
import re
from dataclasses import fields

import asyncpg
import pytest

from app.models import Subscription as SubscriptionTable
from app.models import Synchronization as SynchronizationTable
from app.models import table
from app.purchases.repository import Sync
from app.subscriptions.model import Subscription

REPOSITORIES = (
    "app.activity.repository",
    "app.console.repository",
    "app.admin.repository",
    "app.jobs.queue",
    "app.notifications.repository",
    "app.purchases.repository",
    "app.reconcile.repository",
    "app.subscriptions.repository",
    "app.webhooks.repository",
)
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|NOTIFY)\b", re.IGNORECASE)


def _statements() -> list[tuple[str, str]]:
    found = []
    for name in REPOSITORIES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if isinstance(value, str) and SQL.match(value) and "{" not in value:
                found.append((f"{name}.{attribute}", value))
    return found


STATEMENTS = _statements()


def test_the_repositories_hold_statements() -> None:
    assert len(STATEMENTS) >= 40, [name for name, _ in STATEMENTS]


@pytest.mark.parametrize(("name", "sql"), STATEMENTS, ids=[name for name, _ in STATEMENTS])
async def test_each_statement_prepares(database_url: str, name: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.prepare(sql)
    finally:
        await connection.close()


def test_records_have_the_tables_columns() -> None:
    for record, model in ((Subscription, SubscriptionTable), (Sync, SynchronizationTable)):
        columns = [column.name for column in table(model).columns]
        assert sorted(f.name for f in fields(record)) == sorted(columns), record.__name__
