"""The `activity_minutes` table: its one writer (a flush's counts, added to each minute's row; the
queue's samples, kept at their highest) and its reader (the console's charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.activity.tally import Count
from app.db import Executor
from app.enums import ActivityMetric

_GAUGE = f"a.metric = '{ActivityMetric.QUEUE}'"

# Every row of a flush in one statement, in key order. $1..$6: the columns, as arrays.
WRITE = f"""
INSERT INTO activity_minutes AS a (publisher_id, minute, metric, label, count, total_ms)
SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[],
    $6::bigint[]) AS i (publisher_id, minute, metric, label, count, total_ms)
ON CONFLICT (publisher_id, minute, metric, label) DO UPDATE SET
    count = CASE WHEN {_GAUGE} THEN greatest(a.count, excluded.count)
        ELSE a.count + excluded.count END,
    total_ms = CASE WHEN {_GAUGE} THEN greatest(a.total_ms, excluded.total_ms)
        ELSE a.total_ms + excluded.total_ms END
"""  # noqa: S608 (an enum constant)

PRUNE = "DELETE FROM activity_minutes WHERE minute < $1"


async def write(db: Executor, counts: list[Count]) -> None:
    if not counts:
        return
    await db.execute(
        WRITE,
        [c.key.publisher_id for c in counts],
        [c.key.minute for c in counts],
        [c.key.metric.value for c in counts],
        [c.key.label for c in counts],
        [c.count for c in counts],
        [c.total_ms for c in counts],
    )


async def prune(db: Executor, before: datetime) -> None:
    await db.execute(PRUNE, before)


# One publisher's (or, 0, everyone's) rows of some metrics since $3, until $5, in buckets of $4
# from $3: counts summed, gauges at their highest. At most (minutes / bucket) x labels rows, read
# through the primary key.
SERIES = """
SELECT date_bin($4::interval, minute, $3::timestamptz) AS bucket, metric, label,
    sum(count)::bigint AS count, sum(total_ms)::bigint AS total_ms,
    max(count) AS peak, max(total_ms) AS peak_ms
FROM activity_minutes
WHERE publisher_id = $1 AND metric = ANY($2::text[]) AND minute >= $3 AND minute < $5
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class Point:
    bucket: datetime
    metric: ActivityMetric
    label: str
    count: int
    total_ms: int
    peak: int
    peak_ms: int


async def series(
    db: Executor,
    publisher_id: int,
    metrics: list[ActivityMetric],
    since: datetime,
    until: datetime,
    bucket: timedelta,
) -> list[Point]:
    rows = await db.fetch(SERIES, publisher_id, [m.value for m in metrics], since, bucket, until)
    return [
        Point(
            bucket=row["bucket"],
            metric=ActivityMetric(row["metric"]),
            label=row["label"],
            count=int(row["count"]),
            total_ms=int(row["total_ms"]),
            peak=int(row["peak"]),
            peak_ms=int(row["peak_ms"]),
        )
        for row in rows
    ]
