"""`make soak`: ten minutes of steady syncs at half the saturation, to see what grows.

`python -m bench.soak [--minutes 10] [--rate R] [--json PATH]` starts the same processes as
`make bench`, measures the saturation briefly (unless `--rate` is given), then offers half of it
in one-minute windows, one after another. Before the first window and after each one it reads
the service's memory (RSS, with its children), the size of every table, their dead tuples, and
the jobs waiting; it prints the first and the last reading side by side, and each minute's p99,
and writes everything to `bench/results/soak.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.cpu import CpuMeter
from bench.database import plain_url, postgres_pids
from bench.phases import Target, Timing, syncs_at_rate, syncs_at_saturation
from bench.provision import create_purchases, provision, register_app
from bench.run import (
    Setup,
    _all_ready,
    _completions,
    _run_async,
    log,
    start_all,
    start_service,
)

DEFAULT_JSON = Path(__file__).parent / "results" / "soak.json"
TABLES = (
    "synchronizations",
    "subscriptions",
    "jobs",
    "webhook_events",
    "webhook_deliveries",
    "webhook_delivery_attempts",
    "apple_notifications",
)
READING = """
SELECT relname AS name, pg_total_relation_size(relid) AS bytes, n_live_tup AS live,
    n_dead_tup AS dead, autovacuum_count AS autovacuums
FROM pg_stat_user_tables WHERE relname = ANY($1::text[])
"""
WINDOW_S, GRACE_S, PROBE_S = 60.0, 5.0, 10.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=int, default=10, help="one-minute windows (default 10)")
    p.add_argument("--rate", type=float, help="offered syncs/s (default: half the saturation)")
    p.add_argument("--in-flight", type=int, default=64, help="syncs in flight while probing")
    p.add_argument("--json", type=Path, dest="json_path", default=DEFAULT_JSON)
    return p


def _rss_mb(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
        return round(sum(p.memory_info().rss for p in members) / 2**20, 1)
    except psutil.Error:
        return 0.0


async def _reading(monitor: asyncpg.Connection, service_pid: int) -> dict[str, Any]:
    await monitor.execute("SELECT pg_stat_clear_snapshot()")
    rows = await monitor.fetch(READING, list(TABLES))
    waiting = await monitor.fetchval("SELECT count(*) FROM jobs")
    return {
        "rss_mb": _rss_mb(service_pid),
        "jobs_waiting": int(waiting),
        "tables": {r["name"]: {k: int(r[k]) for k in ("bytes", "live", "dead", "autovacuums")}
                   for r in rows},
    }  # fmt: skip


async def soak(
    args: argparse.Namespace, stack: contextlib.ExitStack, setup: Setup
) -> dict[str, Any]:
    app = await register_app(setup.ports["simulator"])
    await _all_ready(setup)
    shop = await provision(setup.ports["api"], setup.ports["sink"], setup.admin_token, app, 16)
    service = await start_service(stack, setup, 1)
    monitor = await asyncpg.connect(plain_url(setup.database_url))
    meter = CpuMeter({"service": service.pid}, {"postgres": lambda: postgres_pids(monitor)})
    completions = await _completions(shop, setup)
    target = Target(setup.ports["service"], shop.headers, shop.customers)
    try:
        rate = args.rate
        if rate is None:
            log(f"probing the saturation for {PROBE_S:g} s")
            probe = await create_purchases(setup.ports["simulator"], app, 800 * int(PROBE_S))
            found = await syncs_at_saturation(
                target, iter(probe), args.in_flight, Timing(2.0, PROBE_S, 5.0), meter, completions
            )
            rate = max(1.0, round(float(found["per_s"]) / 2, 1))
        count = int(rate * (WINDOW_S + GRACE_S) * args.minutes * 1.1) + 100
        log(f"making {count} purchases for {args.minutes} min at {rate:g}/s")
        purchases = iter(await create_purchases(setup.ports["simulator"], app, count))
        readings, minutes = [await _reading(monitor, service.pid)], []
        for minute in range(args.minutes):
            log(f"minute {minute + 1} of {args.minutes} at {rate:g}/s")
            timing = Timing(0.0, WINDOW_S, GRACE_S)
            minutes.append(await syncs_at_rate(target, purchases, rate, timing, meter, completions))
            readings.append(await _reading(monitor, service.pid))
    finally:
        await completions.close()
        await monitor.close()
    return {"rate": rate, "minutes": minutes, "readings": readings}


def _table(result: dict[str, Any]) -> str:
    first, last = result["readings"][0], result["readings"][-1]
    lines = [
        f"soak: {len(result['minutes'])} min at {result['rate']:g} syncs/s offered",
        f"{'':<36}{'start':>18}{'end':>18}",
        f"{'service RSS, MB':<36}{first['rss_mb']:>18}{last['rss_mb']:>18}",
        f"{'jobs waiting':<36}{first['jobs_waiting']:>18}{last['jobs_waiting']:>18}",
    ]
    for name in TABLES:
        a, b = first["tables"].get(name), last["tables"].get(name)
        if a and b:
            size = f"{a['bytes'] // 1024} kB / {a['dead']}"
            later = f"{b['bytes'] // 1024} kB / {b['dead']}"
            lines.append(f"{name + ', size / dead':<36}{size:>18}{later:>18}")
    p99 = [m["p99_ms"] for m in result["minutes"]]
    lines.append("p99 202 -> webhook, ms, per minute: " + ", ".join(
        "-" if v is None else f"{v:.1f}" for v in p99))  # fmt: skip
    failed = sum(m["errors"] for m in result["minutes"])
    lines.append(f"failed or incomplete: {failed}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storekit-soak-")))
        setup = start_all(stack, work)  # outside the loop: it makes the scratch database
        result = _run_async(soak(args, stack, setup))
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    args.json_path.parent.mkdir(parents=True, exist_ok=True)
    args.json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(result))
    print(f"\nwritten: {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
