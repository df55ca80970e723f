"""The API goes first: while a process's API is busy, its worker takes fewer jobs.

`serve` runs the API and a worker in one process (SPEC §10), on one core. Under a burst of
requests, a worker at its full concurrency takes about half of that core and every 202 waits
behind syncs. The 202 is the promise; the sync behind it can wait a moment. So while `busy_at` or
more requests are in flight in the process, its worker runs at most `busy_jobs` jobs at once (it
never stops: the queue keeps moving), and it goes back to its full concurrency as the burst ends.
A process with no API (`storekit-sync worker`) counts no requests and always runs at full speed.
"""

from __future__ import annotations

BUSY_AT = 16  # requests in flight
BUSY_JOBS = 2


class Foreground:
    """Requests in flight in this process, and what that leaves its worker."""

    def __init__(self, busy_at: int = BUSY_AT, busy_jobs: int = BUSY_JOBS) -> None:
        self.busy_at, self.busy_jobs = busy_at, busy_jobs
        self.in_flight = 0

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    def jobs_allowed(self, concurrency: int) -> int:
        """How many jobs the worker may run at once now, out of its `concurrency`."""
        if self.in_flight >= self.busy_at:
            return min(concurrency, self.busy_jobs)
        return concurrency


# The one every request of this process counts in (RequestMetrics) and its worker reads.
FOREGROUND = Foreground()
