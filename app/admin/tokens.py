"""Publisher tokens: which publisher a token belongs to, with hits kept briefly in this process."""

from __future__ import annotations

import time

from app.admin import repository
from app.db import Executor
from app.security import hash_token, tokens_equal

CACHE_SECONDS = 60.0
CACHE_SIZE = 10_000


class PublisherTokens:
    """Looks tokens up by their hash (tokens are stored hashed), a hit cached a minute."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, float]] = {}  # hash: (publisher, monotonic expiry)

    async def publisher_of(self, db: Executor, token: str) -> int | None:
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        row = await repository.publisher_by_token_hash(db, digest)
        if row is None or not tokens_equal(row["token_hash"], digest):
            return None
        self._remember(digest, int(row["id"]))
        return int(row["id"])

    def _remember(self, digest: str, publisher_id: int) -> None:
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[digest] = (publisher_id, time.monotonic() + CACHE_SECONDS)
