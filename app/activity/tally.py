"""A process's counts since its last flush: per publisher (and in all), minute, metric, label."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.clock import Clock
from app.enums import ActivityMetric

ALL_PUBLISHERS = 0  # the rows that total every publisher's
MAX_KEYS = 50_000  # counts kept while the database cannot take them; older minutes go first


@dataclass(frozen=True, order=True)
class Key:
    publisher_id: int
    minute: datetime
    metric: ActivityMetric
    label: str


@dataclass(frozen=True)
class Count:
    """One row's worth: how many, and their summed duration (a gauge: the highest of each)."""

    key: Key
    count: int
    total_ms: int


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class Tally:
    """Counts in memory, taken whole by `flush`. Only the event loop's thread touches it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._counts: dict[Key, list[int]] = {}
        self.sampled_minute: datetime | None = None  # when the queue was last sampled
        self.pruned_at: datetime | None = None

    def count(
        self, publisher_id: int, metric: ActivityMetric, label: str, duration_ms: int = 0
    ) -> None:
        """One more of `label` now, for the publisher and for the total."""
        minute = minute_of(self.clock.now())
        for publisher in {publisher_id, ALL_PUBLISHERS}:
            self._add(Key(publisher, minute, metric, label), 1, duration_ms)

    def _add(self, key: Key, count: int, total_ms: int) -> None:
        entry = self._counts.get(key)
        if entry is None:
            if len(self._counts) >= MAX_KEYS:
                del self._counts[min(self._counts, key=lambda k: k.minute)]
            self._counts[key] = [count, total_ms]
        else:
            entry[0] += count
            entry[1] += total_ms

    def take(self) -> list[Count]:
        """Everything counted since the last take, in key order (so concurrent flushes of several
        processes lock the shared rows in one order), and forget it."""
        counts, self._counts = self._counts, {}
        return [Count(key, n, ms) for key, (n, ms) in sorted(counts.items())]

    def put_back(self, counts: list[Count]) -> None:
        """Counts a flush could not write: counted again, for the next one."""
        for count in counts:
            if count.key.metric != ActivityMetric.QUEUE:
                self._add(count.key, count.count, count.total_ms)

    def __len__(self) -> int:
        return len(self._counts)
