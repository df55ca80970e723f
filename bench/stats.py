"""Throughput and latency of a run, over its measured window only."""

from __future__ import annotations

import math
from typing import TypedDict

from bench.load import Run


class Summary(TypedDict):
    per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    count: int
    ok: int
    errors: int
    window_s: float
    exhausted: bool


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value * 1000.0, 3)


def summarize(run: Run) -> Summary:
    """Latency of the operations started in the window, a failed one counting as infinitely
    slow (a percentile that lands on one is None); rate of those that succeeded in the window."""
    lo, hi = run.window_start, run.window_end
    started = [s for s in run.samples if lo <= s.start < hi]
    latencies = sorted(s.end - s.start if s.ok else math.inf for s in started)
    ok = sum(1 for s in started if s.ok)
    completed = sum(1 for s in run.samples if s.ok and lo <= s.end < hi)
    return Summary(
        per_s=round(completed / run.seconds, 1),
        p50_ms=_ms(percentile(latencies, 50)),
        p90_ms=_ms(percentile(latencies, 90)),
        p99_ms=_ms(percentile(latencies, 99)),
        max_ms=_ms(latencies[-1] if latencies else None),
        count=len(started),
        ok=ok,
        errors=len(started) - ok,
        window_s=round(run.seconds, 3),
        exhausted=run.exhausted,
    )


def completed_in_window(run: Run) -> int:
    return sum(1 for s in run.samples if s.ok and run.window_start <= s.end < run.window_end)
