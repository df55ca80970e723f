"""Start PostgreSQL, the simulator, the sink, the baseline and the service as separate processes on
loopback; measure; stop them all (in reverse order, whatever happens) and drop the database.

Phases, in this order: the baseline's registrations; the API's registrations with no worker
running anywhere (`serve --no-worker`, as the baseline's rows are processed by no one; their jobs
are dropped afterwards); then the service starts (`serve`, the API and the worker in each
process) for syncs end to end at saturation (a closed loop: the queue stays bounded), syncs end
to end at the offered rate (an open loop: a backlog is possible if the service cannot keep up),
and last the service's registrations with its worker on (their syncs pile up behind them and
would disturb any phase after).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from bench import report
from bench.completions import Arrivals, Completions, Polling
from bench.cpu import CpuMeter
from bench.database import plain_url, postgres_pids, scratch_database
from bench.options import Options
from bench.phases import (
    Target,
    Timing,
    customer_registrations,
    registrations,
    syncs_at_rate,
    syncs_at_saturation,
)
from bench.procs import Proc, free_port, running, wait_http, wait_ready
from bench.provision import Shop, SimApp, create_purchases, provision, register_app
from bench.rawhttp import Connection

BIN = Path(sys.executable).parent / "storekit-sync"
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 90.0
T = TypeVar("T")


@dataclass(frozen=True)
class Setup:
    database_url: str
    admin_token: str
    ports: dict[str, int]
    procs: dict[str, Proc]
    service_env: dict[str, str]
    work: Path

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}


def log(message: str) -> None:
    """Progress on stderr; the results go to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


APPLE_BUDGET_UNLIMITED = 100_000_000  # calls per APPLE_BUDGET_WINDOW (an hour)


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}
    env.update(values)
    return env


def _service_env(work: Path, database_url: str, admin_token: str, sim_port: int) -> dict[str, str]:
    return _env(
        DATABASE_URL=database_url,
        DATA_DIR=str(work / "data"),
        ADMIN_TOKEN=admin_token,
        APPLE_ROOT_CERTIFICATES=str(work / "certs" / "root.der"),
        APPLE_API_BASE_URL=f"http://127.0.0.1:{sim_port}",
        APPLE_ONLINE_CHECKS="false",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        # The simulator runs without Apple's limits here, so the service's share of them is lifted
        # too: the sandbox's 5 calls/s would otherwise pace a long run (`make burst` measures that).
        APPLE_BUDGET=str(APPLE_BUDGET_UNLIMITED),
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
    )


def start_all(stack: contextlib.ExitStack, work: Path) -> Setup:
    """Start every process but the service, each stopped by `stack` on the way out. The API
    (`serve --no-worker`) migrates the database; the service, with its worker, starts after the
    registration phases that must run with no worker (`start_service`). Waits only for the
    simulator, whose root certificate the API needs at start."""
    log("starting PostgreSQL, the simulator, the sink, the baseline and the API (--no-worker)")
    database_url = stack.enter_context(scratch_database())
    admin_token = f"bench-admin-{secrets.token_hex(12)}"
    names = ("service", "api", "simulator", "sink", "baseline")
    ports = {name: free_port() for name in names}
    sim_port = str(ports["simulator"])
    # Apple's rate limits off: this measures the service (the shaping to them is tested apart).
    sim_args = [str(BIN), "simulator", "--port", sim_port, "--cert-dir", str(work / "certs")]
    sim_args.append("--no-rate-limits")
    sim = stack.enter_context(running("simulator", sim_args, _env(), work, work))
    sink_args = [sys.executable, "-m", "bench.sink", "--port", str(ports["sink"])]
    sink = stack.enter_context(running("sink", sink_args, _env(), ROOT, work))
    base_args = [sys.executable, "-m", "bench.baseline", "--port", str(ports["baseline"])]
    base_env = _env(DATABASE_URL=database_url)
    baseline = stack.enter_context(running("baseline", base_args, base_env, ROOT, work))
    wait_http(sim, ports["simulator"], "/healthz", READY_TIMEOUT)  # it has written root.der
    service_env = _service_env(work, database_url, admin_token, ports["simulator"])
    api_args = [str(BIN), "serve", "--no-worker", "--port", str(ports["api"])]
    api = stack.enter_context(running("api", api_args, service_env, work, work))
    procs = {"api": api, "simulator": sim, "sink": sink, "baseline": baseline}
    return Setup(database_url, admin_token, ports, procs, service_env, work)


async def start_service(stack: contextlib.ExitStack, setup: Setup, processes: int) -> Proc:
    """The service as it runs in production: `serve`, the API and the job worker in each of its
    `processes`."""
    log(f"starting the service (serve, worker on, {processes} process(es))")
    args = [str(BIN), "serve", "--port", str(setup.ports["service"])]
    args += ["--workers", str(processes)] if processes > 1 else []
    service = stack.enter_context(
        running("service", args, setup.service_env, setup.work, setup.work)
    )
    setup.procs["service"] = service
    await wait_ready(service, setup.ports["service"], "/readyz", READY_TIMEOUT)
    return service


async def _all_ready(setup: Setup) -> None:
    paths = {"api": "/readyz", "sink": "/healthz", "baseline": "/healthz"}
    await asyncio.gather(
        *(wait_ready(setup.procs[n], setup.ports[n], p, READY_TIMEOUT) for n, p in paths.items())
    )


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def run(options: Options) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storekit-bench-")))
        started = time.monotonic()
        setup = start_all(stack, work)
        return _run_async(measure(options, stack, setup, started))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Purchases:
    at_saturation: list[str]
    at_rate: list[str]
    registrations: list[str]


async def _purchases(options: Options, setup: Setup, app: SimApp) -> Purchases:
    span = options.warmup + options.duration
    counts = (
        int(options.saturation_cap * span),
        int((options.rate or options.saturation_cap / 2) * span) + 10,
        int(options.registration_cap * span),
    )
    made = await create_purchases(setup.ports["simulator"], app, sum(counts))
    first, second = counts[0], counts[0] + counts[1]
    return Purchases(made[:first], made[first:second], made[second:])


def _synthetic(count: int = 10_000_000, first: int = 3_000_000_000_000_000) -> Iterator[str]:
    """Transaction ids that no one is asked about as they are registered (the baseline; the API
    alone, whose syncs the simulator then answers 'not found'): made as needed."""
    return (str(first + i) for i in range(count))


async def _sink_counts(port: int) -> dict[str, Any]:
    connection = Connection(port)
    try:
        records = json.loads((await connection.request("GET", "/records")).body)
    finally:
        await connection.close()
    return {k: records[k] for k in ("deliveries", "duplicates", "topics")}


async def _prepare(
    options: Options, setup: Setup, started: float
) -> tuple[Shop, Purchases, dict[str, Any]]:
    """Purchases are made while the API starts; then the publisher is provisioned through it."""
    app = await register_app(setup.ports["simulator"])
    log("making purchases in the simulator while the API starts")
    purchases, _ = await asyncio.gather(_purchases(options, setup, app), _all_ready(setup))
    log("provisioning a publisher")
    shop = await provision(
        setup.ports["api"], setup.ports["sink"], setup.admin_token, app, options.customers
    )
    if not shop.webhooks:
        log(f"{shop.webhook_note}: end to end is measured by polling")
    return shop, purchases, {"setup_s": round(time.monotonic() - started, 3), "pids": setup.pids}


async def _completions(shop: Shop, setup: Setup) -> Completions:
    if not shop.webhooks:
        return Polling(setup.ports["service"], shop.headers)
    arrivals = Arrivals(setup.ports["sink"])
    await arrivals.start()
    return arrivals


DROP_JOBS = "DELETE FROM jobs"


async def apple_calls(sim_port: int, *, reset: bool = False) -> int:
    """The calls Apple's side answered since the last reset (the simulator counts them)."""
    connection = Connection(sim_port)
    try:
        if reset:
            await connection.request("DELETE", "/sim/calls")
            return 0
        return int(json.loads((await connection.request("GET", "/sim/calls")).body)["total"])
    finally:
        await connection.close()


async def measure(
    options: Options, stack: contextlib.ExitStack, setup: Setup, started: float
) -> dict[str, Any]:
    shop, purchases, times = await _prepare(options, setup, started)
    timing = Timing(options.warmup, options.duration, options.grace)
    monitor = await asyncpg.connect(plain_url(setup.database_url))
    names = ("service", *setup.pids)
    meter = CpuMeter(setup.pids, {"postgres": lambda: postgres_pids(monitor)}, names)
    api = Target(setup.ports["api"], shop.headers, shop.customers)
    baseline = Target(setup.ports["baseline"], {}, shop.customers)
    service = Target(setup.ports["service"], shop.headers, shop.customers)
    each = f"{options.warmup:g} s warm-up + {options.duration:g} s"
    completions: Completions | None = None
    try:
        log(f"baseline registrations, {options.concurrency} concurrent, {each}")
        base = await registrations(baseline, _synthetic(), options.concurrency, timing, meter)
        log(f"API alone (serve --no-worker, no worker anywhere), {options.concurrency} concurrent")
        ids = _synthetic(first=4_000_000_000_000_000)
        api_only = await registrations(api, ids, options.concurrency, timing, meter)
        log(f"API alone, each customer with its own JWT, {options.concurrency} concurrent")
        api_jwt = await customer_registrations(
            setup.ports["api"], shop.customers, shop.jwts, ids, options.concurrency, timing, meter
        )
        # Their syncs are not part of any later phase: no worker will ever run them.
        await monitor.execute(DROP_JOBS)
        meter.fixed["service"] = (await start_service(stack, setup, options.processes)).pid
        times["pids"] = setup.pids
        completions = await _completions(shop, setup)
        log(f"syncs end to end at saturation, {options.in_flight} in flight, {each}")
        await apple_calls(setup.ports["simulator"], reset=True)
        saturation = await syncs_at_saturation(
            service, iter(purchases.at_saturation), options.in_flight, timing, meter, completions
        )
        saturation["apple_calls"] = await apple_calls(setup.ports["simulator"])
        rate = options.rate or max(1.0, round(float(saturation["per_s"]) / 2, 1))
        log(f"syncs end to end at {rate:g}/s offered (half the saturation), {each}")
        at_rate = await syncs_at_rate(
            service, iter(purchases.at_rate), rate, timing, meter, completions
        )
        log(f"service registrations (worker on), {options.concurrency} concurrent, {each}")
        mine = await registrations(
            service, iter(purchases.registrations), options.concurrency, timing, meter
        )
        sink = await _sink_counts(setup.ports["sink"])
    finally:
        if completions is not None:
            await completions.close()
        await monitor.close()
    registration = {"service": mine, "api": api_only, "api_jwt": api_jwt, "baseline": base}
    e2e = {"rate": at_rate, "saturation": saturation}
    return report.assemble(options, shop, times, registration, e2e, sink)
