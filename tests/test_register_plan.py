"""The register's statement keeps a good plan when it is planned on empty tables.

asyncpg prepares each statement once per connection, and PostgreSQL settles on a generic plan
after a few executions. A service that starts on a new database makes that plan while the tables
are nearly empty, when any index that starts with publisher_id costs the planner the same; the plan
then stays while the tables grow. So each lookup must have only one index that can serve it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg

from app.migrate import migrate
from app.purchases.service import REGISTER_SQL


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in node:
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


async def _generic_plan(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(url)
    try:
        types = [t.name for t in (await connection.prepare(REGISTER_SQL)).get_parameters()]
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE register({', '.join(types)}) AS {REGISTER_SQL}")
        arguments = "1, 2, '3', '4', '5', 'register', NULL, 'h', now()"
        explained = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) EXECUTE register({arguments})"
        )
    finally:
        await connection.close()
    return dict(json.loads(explained)[0]["Plan"])


def test_every_lookup_reads_one_row_by_index_on_empty_tables(scratch_url: str) -> None:
    migrate(scratch_url)
    scans = list(_scans(asyncio.run(_generic_plan(scratch_url))))
    lookups = [s for s in scans if s["Node Type"] != "ModifyTable"]
    used = {(s["Relation Name"], s.get("Index Name")) for s in lookups}
    assert used == {
        ("storekit2_integrations", "pk_storekit2_integrations"),
        ("customers", "pk_customers"),
        ("subscriptions", "uq_subscriptions_current_purchase"),
        ("subscriptions", "ix_subscriptions_latest_transaction"),
        ("synchronizations", "ix_synchronizations_resolved"),
        ("synchronizations", "pk_synchronizations"),
    }
    # Found by the index alone: no rows read and then thrown away.
    assert [s["Index Name"] for s in lookups if "Filter" in s] == []
