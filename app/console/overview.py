"""The overview: the last hour or day of syncs, webhook attempts, the queue and Apple's calls, from
`activity_minutes`; and the queue as it is now."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from app.activity import repository as activity
from app.activity.repository import Point
from app.activity.tally import ALL_PUBLISHERS
from app.console import repository
from app.console.charts import Series, lines, stacked_bars
from app.db import Executor
from app.enums import ActivityMetric, SyncResult
from app.jobs import queue

GRANTED = (
    SyncResult.SUBSCRIPTION_CREATED,
    SyncResult.PURCHASE_OWNERSHIP_UNCHANGED,
    SyncResult.PURCHASE_OWNERSHIP_TRANSFERRED,
)
WEBHOOK_OUTCOMES = {"2xx": "c-ok", "4xx": "c-warn", "5xx": "c-bad", "error": "c-7"}
# Failures in warm colours first, so that trouble stands out from the green of success.
FAILURE_COLOURS = ("c-bad", "c-7", "c-4", "c-5", "c-3", "c-6", "c-8", "c-1")


@dataclass(frozen=True)
class Range:
    name: str
    label: str
    span: timedelta
    bucket: timedelta

    @property
    def minutes_per_bucket(self) -> float:
        return self.bucket.total_seconds() / 60


RANGES = {
    "hour": Range("hour", "the last hour", timedelta(hours=1), timedelta(minutes=1)),
    "day": Range("day", "the last day", timedelta(days=1), timedelta(minutes=15)),
}


@dataclass
class Chart:
    key: str
    title: str
    caption: str
    svg: Markup
    series: list[Series]
    buckets: list[datetime]
    unit: str = ""
    summary: str = ""
    extra: list[Series] = field(default_factory=list)  # in the figures table only


@dataclass
class Overview:
    range: Range
    charts: list[Chart] = field(default_factory=list)
    queue_now: list[dict[str, Any]] = field(default_factory=list)
    backlog: dict[str, Any] | None = None


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def buckets_of(span: Range, now: datetime) -> list[datetime]:
    seconds = span.bucket.total_seconds()
    last = datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, now.tzinfo)
    count = int(span.span / span.bucket)
    return [last - span.bucket * (count - 1 - i) for i in range(count)]


def _grid(points: list[Point], buckets: list[datetime], value: str) -> dict[str, list[float]]:
    """Each label's values over the buckets (NaN where none)."""
    index = {moment: i for i, moment in enumerate(buckets)}
    grid: dict[str, list[float]] = defaultdict(lambda: [math.nan] * len(buckets))
    for point in points:
        if point.bucket in index:
            grid[point.label][index[point.bucket]] = float(getattr(point, value))
    return grid


def _zeroed(values: list[float]) -> list[float]:
    return [0.0 if math.isnan(v) else v for v in values]


def _sync_css(result: str, failures: list[str]) -> str:
    if result in GRANTED:
        return ("c-ok", "c-1", "c-2")[GRANTED.index(SyncResult(result))]
    return FAILURE_COLOURS[failures.index(result) % 8]


def syncs_chart(points: list[Point], buckets: list[datetime], span: Range) -> Chart:
    grid = _grid(points, buckets, "count")
    order = [r for r in SyncResult if r in grid] + sorted(set(grid) - set(SyncResult))
    failures = [r for r in order if r not in GRANTED]
    per_minute = span.minutes_per_bucket
    series = [
        Series(r, [v / per_minute for v in _zeroed(grid[r])], _sync_css(r, failures)) for r in order
    ]
    total = sum(sum(_zeroed(grid[r])) for r in order)
    title = "Syncs per minute, by result"
    return Chart(
        "syncs",
        title,
        f"Finalized syncs per minute over {span.label}, stacked by result.",
        stacked_bars(title, buckets, series),
        series,
        buckets,
        summary=f"{int(total):,} finalized",
    )


def webhooks_chart(points: list[Point], buckets: list[datetime], span: Range) -> Chart:
    grid = _grid(points, buckets, "count")
    outcomes = [o for o in WEBHOOK_OUTCOMES if o in grid] + sorted(
        set(grid) - set(WEBHOOK_OUTCOMES)
    )
    series = [Series(o, _zeroed(grid[o]), WEBHOOK_OUTCOMES.get(o, "c-8")) for o in outcomes]
    totals = [sum(s.values[i] for s in series) for i in range(len(buckets))]
    good = _zeroed(grid["2xx"]) if "2xx" in grid else [0.0] * len(buckets)
    rate = [100 * g / t if t else math.nan for g, t in zip(good, totals, strict=True)]
    attempts, succeeded = sum(totals), sum(good)
    summary = plural(int(attempts), "attempt")
    if attempts:
        summary += f", {100 * succeeded / attempts:.1f}% answered 2xx"
    title = "Webhook attempts and success rate"
    chart = Chart(
        "webhooks",
        title,
        f"Webhook delivery attempts over {span.label}, stacked by what the endpoint answered;"
        " the success rate is the share answered 2xx.",
        stacked_bars(title, buckets, series),
        series,
        buckets,
        summary=summary,
    )
    chart.extra = [Series("success rate (%)", rate, "c-ok")]
    return chart


def queue_charts(points: list[Point], buckets: list[datetime], span: Range) -> list[Chart]:
    depth, age = _grid(points, buckets, "peak"), _grid(points, buckets, "peak_ms")
    kinds = sorted(depth)
    deepest = [
        math.nan
        if all(math.isnan(depth[k][i]) for k in kinds)
        else sum(_zeroed([depth[k][i] for k in kinds]))
        for i in range(len(buckets))
    ]
    oldest = [
        math.nan
        if all(math.isnan(age[k][i]) for k in kinds)
        else max(_zeroed([age[k][i] for k in kinds])) / 1000
        for i in range(len(buckets))
    ]
    depth_series, age_series = (
        [Series("due jobs", deepest, "c-1")],
        [Series("oldest due job", oldest, "c-warn")],
    )
    caption = f"Sampled once a minute by each process over {span.label}: the highest seen."
    return [
        Chart(
            "queue-depth",
            "Queue depth",
            caption,
            lines("Queue depth", buckets, depth_series),
            depth_series,
            buckets,
        ),
        Chart(
            "queue-age",
            "Age of the oldest due job",
            caption,
            lines("Age of the oldest due job", buckets, age_series, " s"),
            age_series,
            buckets,
            unit=" s",
        ),
    ]


def apple_chart(points: list[Point], buckets: list[datetime], span: Range) -> Chart:
    by_outcome: dict[str, list[float]] = {}
    for label, values in _grid(points, buckets, "count").items():
        outcome = label.rpartition(" ")[2] or label
        summed = by_outcome.setdefault(outcome, [0.0] * len(buckets))
        for i, value in enumerate(_zeroed(values)):
            summed[i] += value
    others = sorted(o for o in by_outcome if o != "ok")
    series = [Series("ok", by_outcome["ok"], "c-ok")] if "ok" in by_outcome else []
    series += [
        Series(o, by_outcome[o], "c-warn" if o == "429" else FAILURE_COLOURS[i % 8])
        for i, o in enumerate(others)
    ]
    total = sum(s.total for s in series)
    title = "Calls to Apple, by outcome"
    return Chart(
        "apple",
        title,
        f"Calls to the App Store Server API over {span.label}, stacked by outcome (ok, or Apple's"
        " error code, or the connection's failure).",
        stacked_bars(title, buckets, series),
        series,
        buckets,
        summary=plural(int(total), "call"),
    )


async def overview(db: Executor, publisher_id: int | None, span: Range, now: datetime) -> Overview:
    """The charts of the publisher (None: every publisher) over `span`, and the queue now."""
    buckets = buckets_of(span, now)
    since, until = buckets[0], buckets[-1] + span.bucket
    scope = ALL_PUBLISHERS if publisher_id is None else publisher_id
    metrics = [
        ActivityMetric.SYNC,
        ActivityMetric.WEBHOOK,
        ActivityMetric.APPLE,
        ActivityMetric.QUEUE,
    ]
    points = await activity.series(db, scope, metrics, since, until, span.bucket)
    of = defaultdict(list)
    for point in points:
        of[point.metric].append(point)
    found = Overview(span)
    found.charts = [
        syncs_chart(of[ActivityMetric.SYNC], buckets, span),
        webhooks_chart(of[ActivityMetric.WEBHOOK], buckets, span),
        apple_chart(of[ActivityMetric.APPLE], buckets, span),
    ]
    if publisher_id is None:
        found.charts += queue_charts(of[ActivityMetric.QUEUE], buckets, span)
        found.queue_now = [
            {"kind": kind, "due": due, "age": max((now - oldest).total_seconds(), 0.0)}
            for kind, due, oldest in await queue.due_by_kind(db, now)
        ]
    else:
        found.backlog = await repository.backlog(db, publisher_id)
    return found
