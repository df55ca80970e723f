"""`make burst`: a launch-day burst against Apple's rate limit.

`python -m bench.burst [--syncs 300] [--per-minute 100] [--json PATH]` starts the same processes
as `make bench`. The simulator limits the one app to `--per-minute` calls a minute on every
endpoint (Apple's limit, scaled down so that the burst outruns it), the service is told its budget
(`APPLE_BUDGET` a little below it, `APPLE_BUDGET_WINDOW=60`), and `--syncs` purchases are
registered at once. It waits until every sync is finalized and reports how long that took, the
results, the statuses the syncs went through, and the calls the simulator answered (200s and
429s). Shaped well: every sync finalized, none `APPLE_UNAVAILABLE`, none `retrying`, and at most
one 429. Writes `bench/results/burst.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.provision import create_purchases, provision, register_app
from bench.run import Setup, _all_ready, _run_async, log, start_all, start_service

DEFAULT_JSON = Path(__file__).parent / "results" / "burst.json"
WINDOW_S = 60
POLL_S = 2.0
REGISTER_CONCURRENCY = 32


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__)
    p.add_argument("--syncs", type=int, default=300, help="purchases registered at once")
    p.add_argument("--per-minute", type=int, default=100, help="Apple's limit for the app")
    p.add_argument("--json", type=Path, dest="json_path", default=DEFAULT_JSON)
    return p


async def _limit_apple(sim: httpx.AsyncClient, bundle_id: str, per_minute: int) -> None:
    (await sim.put("/sim/rate-limits", json={"enabled": True})).raise_for_status()
    body = {"budget": per_minute, "windowSeconds": WINDOW_S}
    (await sim.put(f"/sim/apps/{bundle_id}/rate-limit", json=body)).raise_for_status()
    (await sim.delete("/sim/calls")).raise_for_status()


async def _register_all(
    api: httpx.AsyncClient, customers: tuple[int, ...], purchases: list[str]
) -> list[str]:
    gate, ids = asyncio.Semaphore(REGISTER_CONCURRENCY), []

    async def one(n: int, transaction_id: str) -> None:
        body = {"cleengCustomerId": customers[n % len(customers)], "transactionId": transaction_id}
        async with gate:
            answer = await api.post("/storekit2/purchases", json=body)
        answer.raise_for_status()
        ids.append(str(answer.json()["synchronizationId"]))

    await asyncio.gather(*(one(n, t) for n, t in enumerate(purchases)))
    return ids


async def _until_finalized(
    api: httpx.AsyncClient, ids: list[str], limit_s: float
) -> tuple[dict[str, Any], Counter[str]]:
    """Poll every sync until all are finalized; the last answers and every status seen."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + limit_s
    while True:
        answers = await asyncio.gather(*(api.get(f"/purchases/synchronizations/{i}") for i in ids))
        polls = {i: a.json() for i, a in zip(ids, answers, strict=True)}
        seen.update({p["status"] for p in polls.values()})
        if all(p["status"] == "finalized" for p in polls.values()) or time.monotonic() > deadline:
            return polls, seen
        await asyncio.sleep(POLL_S)


async def burst(
    args: argparse.Namespace, stack: contextlib.ExitStack, setup: Setup
) -> dict[str, Any]:
    app = await register_app(setup.ports["simulator"])
    await _all_ready(setup)
    shop = await provision(setup.ports["api"], setup.ports["sink"], setup.admin_token, app, 16)
    budget = max(1, int(args.per_minute * 0.95))
    setup.service_env.update(APPLE_BUDGET=str(budget), APPLE_BUDGET_WINDOW=str(WINDOW_S))
    await start_service(stack, setup, 1)
    sim_url = f"http://127.0.0.1:{setup.ports['simulator']}"
    api_url = f"http://127.0.0.1:{setup.ports['service']}"
    async with (
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
        httpx.AsyncClient(base_url=api_url, headers=shop.headers, timeout=30) as api,
    ):
        purchases = await create_purchases(setup.ports["simulator"], app, args.syncs)
        await _limit_apple(sim, app.bundle_id, args.per_minute)
        log(f"registering {args.syncs} purchases at once; Apple allows {args.per_minute}/min")
        started = time.monotonic()
        ids = await _register_all(api, shop.customers, purchases)
        registered_s = time.monotonic() - started
        limit_s = args.syncs / budget * WINDOW_S + 2 * WINDOW_S
        polls, seen = await _until_finalized(api, ids, limit_s)
        elapsed_s = time.monotonic() - started
        calls = (await sim.get("/sim/calls")).json()["calls"]
    by_status: Counter[int] = Counter()
    for call in calls:
        by_status[int(call["status"])] += int(call["count"])
    return {
        "syncs": args.syncs,
        "apple_per_minute": args.per_minute,
        "service_budget_per_minute": budget,
        "registered_s": round(registered_s, 2),
        "all_finalized_s": round(elapsed_s, 1),
        "finalized": sum(p["status"] == "finalized" for p in polls.values()),
        "results": dict(Counter(str(p.get("result")) for p in polls.values())),
        "statuses_seen": dict(seen),
        "apple_calls_by_status": {str(k): v for k, v in sorted(by_status.items())},
    }


def _table(result: dict[str, Any]) -> str:
    calls = result["apple_calls_by_status"]
    return "\n".join(
        [
            f"burst: {result['syncs']} syncs registered at once, Apple allowing "
            f"{result['apple_per_minute']}/min, the service's budget "
            f"{result['service_budget_per_minute']}/min",
            f"registered (202) in            {result['registered_s']} s",
            f"every sync finalized after     {result['all_finalized_s']} s",
            f"finalized                      {result['finalized']} of {result['syncs']}",
            f"results                        {result['results']}",
            f"statuses seen while polling    {result['statuses_seen']}",
            f"Apple's answers                200: {calls.get('200', 0)}, "
            f"429: {calls.get('429', 0)}, other: "
            f"{sum(v for k, v in calls.items() if k not in ('200', '429'))}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storekit-burst-")))
        setup = start_all(stack, work)
        result = _run_async(burst(args, stack, setup))
    args.json_path.parent.mkdir(parents=True, exist_ok=True)
    args.json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(result))
    print(f"\nwritten: {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
