"""CPU seconds (user + system) of each benchmarked process over a measurement window."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

import psutil

PidSource = Callable[[], Awaitable[list[int]]]
Snapshot = dict[str, dict[int, float]]


class CpuMeter:
    """`fixed` names one pid per process, counted with its children (but the harness, whose
    children are the other processes); `dynamic` names a process group found at each sample
    (PostgreSQL's backends come and go)."""

    def __init__(
        self,
        fixed: Mapping[str, int],
        dynamic: Mapping[str, PidSource],
        names: Iterable[str] = (),
    ) -> None:
        """`names`: processes reported even while they do not run (as 0 s: they spent none)."""
        self.fixed = {**fixed, "harness": os.getpid()}
        self.dynamic = dict(dynamic)
        self.names = set(names)
        self._processes: dict[int, psutil.Process] = {}

    def _cpu(self, pid: int) -> float | None:
        try:
            process = self._processes.get(pid) or psutil.Process(pid)
            self._processes[pid] = process
            times = process.cpu_times()
        except psutil.Error:
            self._processes.pop(pid, None)
            return None
        return float(times.user + times.system)

    def _measure(self, pids: list[int]) -> dict[int, float]:
        found = {pid: self._cpu(pid) for pid in set(pids)}
        return {pid: cpu for pid, cpu in found.items() if cpu is not None}

    def _tree(self, pid: int) -> list[int]:
        """The process and its children (`serve --workers N` runs its processes as children)."""
        try:
            return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        except psutil.Error:
            return [pid]

    async def snapshot(self) -> Snapshot:
        sample = {
            name: self._measure([pid] if name == "harness" else self._tree(pid))
            for name, pid in self.fixed.items()
        }
        for name, source in self.dynamic.items():
            try:
                sample[name] = self._measure(await source())
            except Exception:
                sample[name] = {}
        return sample

    async def window(self, start: float, end: float) -> dict[str, float]:
        """Sleep until `start` (time.monotonic()), sample, sleep until `end`, sample: the delta."""
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before = await self.snapshot()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        return dict.fromkeys(self.names, 0.0) | delta(before, await self.snapshot())


def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds spent between two snapshots, per name. A process first seen in `after` counts
    whole (it started inside the window); one gone by `after` is lost (rare: pools keep theirs)."""
    spent: dict[str, float] = {}
    for name, pids in after.items():
        earlier = before.get(name, {})
        spent[name] = sum(max(0.0, cpu - earlier.get(pid, 0.0)) for pid, cpu in pids.items())
    return spent


def per_thousand(spent: Mapping[str, float], count: int) -> dict[str, float | None]:
    return {
        name: (round(1000.0 * cpu / count, 3) if count else None) for name, cpu in spent.items()
    }
