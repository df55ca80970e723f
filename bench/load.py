"""Two load shapes over an operation `op(pool, due) -> Sample`:

- closed loop: `concurrency` users, each with its own keep-alive connection, one operation after
  another, for a warm-up and then a measured window;
- open loop: operations started at a fixed rate whatever the answers, each timed from when it was
  due (so a slow server cannot hide its queueing: no coordinated omission).

An operation returns None when it has no more work (its purchases ran out): the run then ends early
and the measured window is cut there. Operations give up by the phase's deadline (the end of the
measured window plus a grace period); any still running a little later are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.rawhttp import Pool

MAX_OPS_PER_USER = 10_000_000
SAFETY = 2.0  # seconds after a phase's deadline before its stragglers are cancelled


@dataclass(frozen=True)
class Sample:
    start: float  # time.monotonic() seconds
    end: float
    ok: bool


Op = Callable[[Pool, float], Awaitable[Sample | None]]


@dataclass(frozen=True)
class Window:
    """A phase's clock: load from `start`, measured from `start + warmup` for `duration`
    seconds; operations still running `grace` seconds after that are given up."""

    start: float
    warmup: float
    duration: float
    grace: float

    @classmethod
    def from_now(cls, warmup: float, duration: float, grace: float) -> Window:
        return cls(time.monotonic(), warmup, duration, grace)

    @property
    def measure_start(self) -> float:
        return self.start + self.warmup

    @property
    def measure_end(self) -> float:
        return self.start + self.warmup + self.duration

    @property
    def deadline(self) -> float:
        return self.measure_end + self.grace


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    window_start: float = 0.0
    window_end: float = 0.0
    exhausted: bool = False

    @property
    def seconds(self) -> float:
        return max(self.window_end - self.window_start, 1e-9)

    def ran_out(self, at: float) -> None:
        """The purchases ran out at `at`: the measured window ends there."""
        self.exhausted, self.window_end = True, min(self.window_end, at)


async def _user(op: Op, pool: Pool, stop: float, run: Run, current: list[float]) -> None:
    """One user of a closed loop; `current[0]` is when its running operation started."""
    for _ in range(MAX_OPS_PER_USER):
        now = time.monotonic()
        if now >= stop or run.exhausted:
            return
        current[0] = now
        sample = await op(pool, now)
        current[0] = math.nan
        if sample is None:
            run.ran_out(time.monotonic())
            return
        run.samples.append(sample)


async def closed_loop(op: Op, pools: list[Pool], window: Window) -> Run:
    """Every pool is one user (give each a pool of one connection); users start no operation
    after the measured window. An operation cut off at the deadline counts as failed."""
    run = Run(window_start=window.measure_start, window_end=window.measure_end)
    current = [[math.nan] for _ in pools]
    users = [
        asyncio.ensure_future(_user(op, pool, window.measure_end, run, started))
        for pool, started in zip(pools, current, strict=True)
    ]
    await _finish(users, window.deadline + SAFETY - time.monotonic())
    cut_off = [s[0] for s in current if not math.isnan(s[0])]
    run.samples.extend(Sample(start, window.deadline, False) for start in cut_off)
    return run


async def open_loop(op: Op, pool: Pool, rate: float, window: Window) -> Run:
    """`rate` operations per second from `window.start` to the end of the measured window, each
    timed from when it was due. An operation cut off at the deadline counts as failed."""
    run = Run(window_start=window.measure_start, window_end=window.measure_end)
    total = int(rate * (window.warmup + window.duration))
    scheduled: list[tuple[float, asyncio.Future[Sample | None]]] = []
    for i in range(total):
        due = window.start + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        scheduled.append((due, asyncio.ensure_future(op(pool, due))))
    await _finish([task for _, task in scheduled], window.deadline + SAFETY - time.monotonic())
    for due, task in scheduled:
        if task.cancelled() or task.exception() is not None:
            run.samples.append(Sample(due, window.deadline, False))  # cut off, or it crashed
        elif (sample := task.result()) is None:
            run.ran_out(due)
        else:
            run.samples.append(sample)
    return run


async def _finish(tasks: Sequence[asyncio.Future[Any]], patience: float) -> None:
    """Wait for `tasks`, cancelling what is still running after `patience` seconds."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(patience, 0.0))
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*pending, return_exceptions=True)
