"""How long a reconciliation pass takes: `python -m bench.reconcile [--subscriptions N]
[--notifications N] [--lapsed N]`.

The simulator runs as its own process (rate limits off, and the service's share of Apple's budget
out of the way: a pass's cost is measured, not Apple's budget); PostgreSQL is a scratch database on `DATABASE_URL`'s server, or embedded. One app,
`--subscriptions` purchases in the simulator and as many subscriptions in the service (written
straight into the table, as syncs would have left them), `--notifications` of those purchases
renewed with a notification the service never received (recorded as failed in Apple's history).
Then, each timed on its own, in one process with the service's code:

1. a pass that recovers the missed notifications (and finds no lapsed subscription);
2. applying what it recovered (the workers' part, after the pass);
3. the next pass: the window read again for the overlap, every notification known;
4. a pass whose safety net reads `--lapsed` subscriptions again (their stored expiry moved a day
   into the past; Apple says they renewed: each is extended, with `subscriptionRenewed`);
5. every subscription lapsed: passes one after another (each bounded) until none is left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.context import Context
from app.enums import JobKind
from app.jobs import queue
from app.migrate import migrate
from app.runtime import job_handlers, make_worker
from app.subscriptions import repository as subscriptions
from app.subscriptions.model import WRITTEN
from bench.database import scratch_database
from bench.procs import free_port, running, wait_http

BIN = Path(sys.executable).parent / "storekit-sync"
ADMIN_TOKEN = "bench-admin-token-" + secrets.token_hex(8)
OFFER = "S123456789_US"
PARALLEL = 32


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}


def _settings(database_url: str, data_dir: Path, sim_url: str, root: Path) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "apple_root_certificates": (root,),
        "apple_api_base_url": sim_url,
        "apple_online_checks": False,
        "run_worker": False,
        "apple_budget": 10_000_000,  # a pass's own cost is measured, not Apple's hourly budget
        "log_level": "WARNING",
        "log_format": "json",
    }
    build: Any = Settings
    return cast(Settings, build(_env_file=None, **values))


async def _each(count: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """`make(0)` … `make(count - 1)`, PARALLEL at a time, in order."""
    results: list[Any] = [None] * count
    queue_ = iter(range(count))

    async def worker() -> None:
        for n in queue_:
            results[n] = await make(n)

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    return results


async def _ok(answer: httpx.Response, status: int = 200) -> Any:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.url}: {answer.status_code} {answer.text[:300]}")
    return answer.json() if answer.content else None


async def _provision(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, purchases: int, missed: int
) -> tuple[int, int, str, list[dict[str, Any]]]:
    """The app, its purchases (some renewed, unnotified), the publisher, offer and customer."""
    bundle = f"com.bench{secrets.token_hex(4)}.tv"
    app = await _ok(await sim.post("/sim/apps", json={"bundleId": bundle}), 201)
    admin = {"X-Admin-Token": ADMIN_TOKEN}
    publisher = await _ok(
        await api.post("/admin/publishers", json={"name": "Bench"}, headers=admin), 201
    )
    pid = int(publisher["publisherId"])
    integration = {
        "bundleId": bundle,
        "appAppleId": app["appAppleId"],
        "issuerId": app["issuerId"],
        "keyId": app["keyId"],
        "privateKey": app["privateKey"],
        "environment": "Sandbox",
    }
    await _ok(await api.put(f"/admin/publishers/{pid}/storekit2", json=integration, headers=admin))
    offer = {"title": "Pro", "productIds": [f"{bundle}.monthly"]}
    await _ok(await api.put(f"/admin/publishers/{pid}/offers/{OFFER}", json=offer, headers=admin))
    customer = await _ok(
        await api.post(
            f"/admin/publishers/{pid}/customers", json={"email": "b@example.com"}, headers=admin
        ),
        201,
    )
    body = {"bundleId": bundle, "productId": f"{bundle}.monthly", "type": "auto-renewable"}

    async def buy(_: int) -> dict[str, Any]:
        return dict(await _ok(await sim.post("/sim/purchases", json=body), 201))

    bought = await _each(purchases, buy)

    async def miss(n: int) -> None:
        path = f"/sim/purchases/{bought[n]['transactionId']}/renew"
        await _ok(await sim.post(path, json={"notify": True, "failDelivery": "SOCKET_ISSUE"}))

    await _each(missed, miss)
    return pid, int(customer["customerId"]), bundle, bought


async def _subscriptions(
    context: Context, pid: int, customer: int, bundle: str, bought: list[dict[str, Any]]
) -> None:
    """As the syncs of the purchases (made before the renewals) would have left them."""
    now = context.clock.now()
    rows = []
    for purchase in bought:
        expires = datetime.fromtimestamp(int(purchase["expiresDate"]) / 1000, UTC)
        values = {
            "publisher_id": pid,
            "customer_id": customer,
            "offer_id": OFFER,
            "status": "active",
            "product_type": "Auto-Renewable Subscription",
            "product_id": f"{bundle}.monthly",
            "original_transaction_id": purchase["originalTransactionId"],
            "latest_transaction_id": purchase["transactionId"],
            "environment": "Sandbox",
            "expires_at": expires,
            "grace_expires_at": None,
            "revoked_at": None,
            "apple_status": 1,
            "auto_renew": True,
            "in_trial": False,
            "terminated_reason": None,
            "apple_signed_at": now - timedelta(days=2),
            "created_at": now,
            "updated_at": now,
            "bundle_id": bundle,
            "apple_checked_at": None,
            "apple_check_failed_at": None,
        }
        rows.append([values[name] for name in WRITTEN])
    async with context.db.transaction() as tx:
        raw = cast(Any, tx).raw
        await raw.executemany(subscriptions.INSERT.replace("RETURNING id", ""), rows)


async def _pass(context: Context) -> tuple[float, dict[str, Any]]:
    """One reconciliation pass, claimed and run as a worker would; its time and its record."""
    db = context.db
    await queue.ensure_periodic(db, JobKind.RECONCILE, context.clock.now())
    [job] = await queue.claim(db, "bench", context.clock.now(), 1)
    assert job.kind == JobKind.RECONCILE, job
    handler = job_handlers(context)[JobKind.RECONCILE]
    started = time.perf_counter()
    await handler(job)
    seconds = time.perf_counter() - started
    row = await db.fetchrow("SELECT * FROM reconcile_passes ORDER BY id DESC LIMIT 1")
    assert row is not None
    return seconds, dict(row)


def _line(name: str, seconds: float, record: dict[str, Any] | None = None) -> dict[str, Any]:
    shown = (
        {k: record[k] for k in ("outcome", "recovered", "checked", "corrected")} if record else {}
    )
    print(f"{name:<58} {seconds:7.2f} s  {json.dumps(shown, default=str)}", flush=True)
    return {"step": name, "seconds": round(seconds, 3), **shown}


async def _lapse(context: Context, pid: int, limit: int | None) -> None:
    """Move stored expiries a day into the past (the `limit` oldest subscriptions, or all)."""
    sql = """UPDATE subscriptions SET expires_at = $2, apple_signed_at = $3
        WHERE id IN (SELECT id FROM subscriptions WHERE publisher_id = $1 ORDER BY id LIMIT $4)"""
    now = context.clock.now()
    await context.db.execute(sql, pid, now - timedelta(days=1), now - timedelta(days=31), limit)


async def _measure(app: FastAPI, sim_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    context = cast(Context, app.state.context)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://service", timeout=30) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
    ):
        started = time.perf_counter()
        pid, customer, bundle, bought = await _provision(
            api, sim, args.subscriptions, args.notifications
        )
        await _subscriptions(context, pid, customer, bundle, bought)
        print(
            f"set-up: {len(bought)} purchases and subscriptions, {args.notifications} missed"
            f" notifications, {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    results = []
    seconds, record = await _pass(context)
    results.append(_line("1. pass: history recovered, no subscription lapsed", seconds, record))
    worker = make_worker(context, concurrency=16)
    started = time.perf_counter()
    applied = await worker.drain()
    results.append(
        _line(f"2. applying the {applied} recovered (workers)", time.perf_counter() - started)
    )
    seconds, record = await _pass(context)
    results.append(_line("3. next pass: overlap read again, all known", seconds, record))
    await _lapse(context, pid, args.lapsed)
    seconds, record = await _pass(context)
    results.append(_line(f"4. pass: safety net over {args.lapsed} lapsed", seconds, record))
    await worker.drain()
    await _lapse(context, pid, None)
    total, passes = 0.0, 0
    while True:
        seconds, record = await _pass(context)
        total, passes = total + seconds, passes + 1
        if record["outcome"] != "partial":
            break
    results.append(_line(f"5. all {args.subscriptions} lapsed: {passes} passes in all", total))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--notifications", type=int, default=1_000)
    parser.add_argument("--lapsed", type=int, default=1_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/reconcile.json"))
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sks-reconcile-")))
        database_url = stack.enter_context(scratch_database())
        migrate(database_url)
        port = free_port()
        sim_args = [
            str(BIN),
            "simulator",
            "--port",
            str(port),
            "--cert-dir",
            str(work / "certs"),
            "--no-rate-limits",
        ]
        sim = stack.enter_context(running("simulator", sim_args, _env(), work, work))
        wait_http(sim, port, "/sim/root.der", 30)
        sim_url = f"http://127.0.0.1:{port}"
        settings = _settings(database_url, work / "data", sim_url, work / "certs" / "root.der")
        from app.main import create_app

        app = create_app(settings)

        async def run() -> list[dict[str, Any]]:
            async with app.router.lifespan_context(app):
                return await _measure(app, sim_url, args)

        results = asyncio.run(run())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
