"""The plans PostgreSQL keeps for a statement: a generic plan, made on the tables as they are (the
tests' are nearly empty: the worst case, as a service that starts on a new database meets it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg


def scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of the plan that reads a table."""
    if "Relation Name" in node and node["Node Type"] != "ModifyTable":
        yield node
    for child in node.get("Plans", []):
        yield from scans(child)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(value).upper() if isinstance(value, bool) else str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


async def generic_scans(url: str, sql: str, arguments: list[object]) -> list[dict[str, Any]]:
    """The table reads of the generic plan of `sql` with `arguments`."""
    connection = await asyncpg.connect(url)
    try:
        types = [t.name for t in (await connection.prepare(sql)).get_parameters()]
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        typed = f"({', '.join(types)})" if types else ""
        await connection.execute(f"PREPARE q{typed} AS {sql}")
        values = ", ".join(_literal(value) for value in arguments)
        given = f"({values})" if values else ""
        explained = await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE q{given}")
    finally:
        await connection.close()
    return list(scans(json.loads(explained)[0]["Plan"]))
