"""A pass's proof that it still holds its job, checked in every transaction that writes."""

from __future__ import annotations

from dataclasses import dataclass

from app.db import Executor
from app.jobs import queue


class Superseded(Exception):
    """Another worker claimed the pass's job (its lease ran out): this pass stops, unwritten."""


@dataclass(frozen=True)
class Fence:
    job_id: int
    attempts: int  # as claimed: a later claim by anyone makes it grow

    async def check(self, tx: Executor) -> None:
        """In the step's transaction, before it writes: the job is still this pass's, and
        locked until the step commits (a claim by another worker waits for it)."""
        if not await queue.still_held(tx, self.job_id, self.attempts):
            raise Superseded()
