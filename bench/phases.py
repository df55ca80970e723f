"""The measured phases: registrations (service or baseline) in a closed loop, and syncs end to
end at a fixed offered rate (open loop) and at saturation (a closed loop of whole syncs)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bench.completions import Completions
from bench.cpu import CpuMeter, per_thousand
from bench.load import Op, Run, Sample, Window, closed_loop, open_loop
from bench.rawhttp import Pool
from bench.stats import completed_in_window, summarize

REGISTER_PATH = "/storekit2/purchases"
OP_TIMEOUT = 30.0
OPEN_LOOP_CONNECTIONS = 64


@dataclass(frozen=True)
class Target:
    """Where registrations go and what they carry."""

    port: int
    headers: Mapping[str, str]
    customers: tuple[int, ...]


@dataclass(frozen=True)
class Timing:
    warmup: float
    duration: float
    grace: float  # how long after the window a sync may still complete and count


class Registrar:
    """Sends `POST /storekit2/purchases` for the next purchase; counts answers by status."""

    def __init__(self, target: Target, purchases: Iterator[str]) -> None:
        self.target, self.purchases = target, purchases
        self.statuses: Counter[str] = Counter()
        self._customer = itertools.cycle(target.customers)

    def _body(self, transaction_id: str) -> bytes:
        customer = next(self._customer)
        return (
            f'{{"cleengCustomerId":{customer},"transactionId":"{transaction_id}",'
            f'"ipAddress":"203.0.113.7"}}'
        ).encode()

    async def register(self, pool: Pool) -> tuple[str | None, bool] | None:
        """(synchronizationId, accepted), or None when the purchases ran out."""
        transaction_id = next(self.purchases, None)
        if transaction_id is None:
            return None
        try:
            answer = await pool.request("POST", REGISTER_PATH, self._body(transaction_id))
        except Exception as error:
            self.statuses[type(error).__name__] += 1
            return None, False
        self.statuses[str(answer.status)] += 1
        if answer.status != 202:
            return None, False
        return str(json.loads(answer.body)["synchronizationId"]), True


def registration_op(registrar: Registrar) -> Op:
    """One registration: a sample from the request to its answer."""

    async def op(pool: Pool, due: float) -> Sample | None:
        outcome = await registrar.register(pool)
        if outcome is None:
            return None
        return Sample(due, time.monotonic(), outcome[1])

    return op


def sync_op(registrar: Registrar, completions: Completions, deadline: float) -> Op:
    """Register, then wait (until `deadline` at most) for the sync to complete: a sample from
    the 202 to completion."""

    async def op(pool: Pool, due: float) -> Sample | None:
        outcome = await registrar.register(pool)
        if outcome is None:
            return None
        sync_id, _ = outcome
        at = time.monotonic()
        if sync_id is None:
            return Sample(at, at, False)
        done = await completions.wait(sync_id, max(0.0, deadline - at))
        if done is None:
            registrar.statuses["incomplete"] += 1
        return Sample(at, done if done is not None else at, done is not None)

    return op


def _pools(target: Target, users: int) -> list[Pool]:
    headers = {"Content-Type": "application/json", **target.headers}
    return [Pool(target.port, 1, headers, OP_TIMEOUT) for _ in range(users)]


async def _measured(
    meter: CpuMeter, window: Window, load: Awaitable[Run]
) -> tuple[Run, dict[str, float]]:
    cpu = asyncio.ensure_future(meter.window(window.measure_start, window.measure_end))
    run = await load
    return run, await cpu


def _result(run: Run, cpu: dict[str, float], statuses: Counter[str]) -> dict[str, Any]:
    completed = completed_in_window(run)
    return {
        **summarize(run),
        "statuses": dict(statuses),
        "cpu_s_per_1000": per_thousand(cpu, completed),
        "cpu_s": {name: round(value, 3) for name, value in cpu.items()},
    }


async def _closed(
    op: Op, pools: list[Pool], window: Window, meter: CpuMeter
) -> tuple[Run, dict[str, float]]:
    try:
        return await _measured(meter, window, closed_loop(op, pools, window))
    finally:
        for pool in pools:
            await pool.close()


async def registrations(
    target: Target, purchases: Iterator[str], users: int, timing: Timing, meter: CpuMeter
) -> dict[str, Any]:
    """Closed loop of registrations, `users` at a time."""
    registrar = Registrar(target, purchases)
    window = Window.from_now(timing.warmup, timing.duration, timing.grace)
    op = registration_op(registrar)
    run, cpu = await _closed(op, _pools(target, users), window, meter)
    return {"concurrency": users, **_result(run, cpu, registrar.statuses)}


async def customer_registrations(
    port: int,
    customers: tuple[int, ...],
    jwts: tuple[str, ...],
    purchases: Iterator[str],
    users: int,
    timing: Timing,
    meter: CpuMeter,
) -> dict[str, Any]:
    """Closed loop of registrations by the customers themselves: each user one customer, with
    its own JWT (`Authorization: Bearer`), as a mobile app registers."""
    pools, registrars = [], {}
    for user in range(users):
        mine = user % len(customers)
        target = Target(port, {"Authorization": f"Bearer {jwts[mine]}"}, (customers[mine],))
        pool = _pools(target, 1)[0]
        pools.append(pool)
        registrars[id(pool)] = Registrar(target, purchases)

    async def op(pool: Pool, due: float) -> Sample | None:
        outcome = await registrars[id(pool)].register(pool)
        return None if outcome is None else Sample(due, time.monotonic(), outcome[1])

    window = Window.from_now(timing.warmup, timing.duration, timing.grace)
    run, cpu = await _closed(op, pools, window, meter)
    statuses: Counter[str] = sum((r.statuses for r in registrars.values()), Counter())
    return {"concurrency": users, **_result(run, cpu, statuses)}


async def syncs_at_rate(
    target: Target,
    purchases: Iterator[str],
    rate: float,
    timing: Timing,
    meter: CpuMeter,
    completions: Completions,
) -> dict[str, Any]:
    """Open loop: `rate` registrations per second, each followed to its completion."""
    registrar = Registrar(target, purchases)
    window = Window.from_now(timing.warmup, timing.duration, timing.grace)
    headers = {"Content-Type": "application/json", **target.headers}
    pool = Pool(target.port, OPEN_LOOP_CONNECTIONS, headers, OP_TIMEOUT)
    op = sync_op(registrar, completions, window.deadline)
    try:
        run, cpu = await _measured(meter, window, open_loop(op, pool, rate, window))
    finally:
        await pool.close()
    result = _result(run, cpu, registrar.statuses)
    return {"offered_per_s": rate, "measured": completions.description, **result}


async def syncs_at_saturation(
    target: Target,
    purchases: Iterator[str],
    in_flight: int,
    timing: Timing,
    meter: CpuMeter,
    completions: Completions,
) -> dict[str, Any]:
    """Closed loop of whole syncs: `in_flight` users, each registering its next purchase as soon
    as the previous one completed; the service always has work, and its queue stays bounded."""
    registrar = Registrar(target, purchases)
    window = Window.from_now(timing.warmup, timing.duration, timing.grace)
    op = sync_op(registrar, completions, window.deadline)
    run, cpu = await _closed(op, _pools(target, in_flight), window, meter)
    result = _result(run, cpu, registrar.statuses)
    return {"in_flight": in_flight, "measured": completions.description, **result}
