"""Publisher tokens as the API checks them: whose a token is, kept in this process's memory and
forgotten on every process within a second of its revocation; and when each was last used.

**Revocation reaches every process.** Revoking deletes the token and, in the same statement,
`pg_notify`s its id on `TOKENS_CHANNEL`; PostgreSQL sends that when the revoke commits, to every
session that LISTENs. Each process listens on a connection of its own (opened at its first
publisher token) and forgets the token at once.

**The memory answers only while the listener is known to hear.** The listener's connection is
pinged every `PING_SECONDS`, and a token is answered from memory only if a ping sent less than
`FRESH_SECONDS` ago came back. A ping's answer comes after every notification committed before
the ping was sent (one connection, in order), so a revoked token is never answered from memory
more than `FRESH_SECONDS` (0.9 s) after the revoke committed, even when the connection died
without a word (a failover, a dropped NAT entry). Meanwhile every token is looked up in the
database. A lost connection clears the memory; a new one is opened, and the memory is cleared
again once it listens, so nothing a lost notification was about survives.

**A lookup in flight cannot bring a revoked token back.** Each notice (and each loss of the
listener) moves an epoch; a lookup keeps its answer only if no notice arrived while it ran.

**lastUsedAt costs no write per request.** A token's use is noted in memory and written by a
task of its own, at most once a minute per token and process; the statement itself leaves a
row touched in the last minute alone, so several processes write it about once a minute too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from app.admin import repository
from app.clock import Clock
from app.db import Database
from app.metrics import PUBLISHER_TOKEN_LOOKUPS
from app.security import hash_token, tokens_equal

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0  # the longest a token is answered from memory without a lookup
CACHE_SIZE = 10_000
PING_SECONDS = 0.3
FRESH_SECONDS = 0.9  # a revoked token stops working this long after the revoke, at the latest
PING_TIMEOUT = 5.0  # a ping unanswered this long: the connection is replaced
CONNECT_TIMEOUT = 5.0
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class _Known:
    publisher_id: int
    token_id: str
    until: float  # monotonic


class PublisherTokens:
    """Looks tokens up by their hash (tokens are stored hashed), answering known ones from
    memory while the revocation listener is known to hear."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        ping_seconds: float = PING_SECONDS,
        fresh_seconds: float = FRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.clock = db, clock
        self.ping_seconds, self.fresh_seconds = ping_seconds, fresh_seconds
        self._monotonic = monotonic
        self._known: dict[str, _Known] = {}  # token hash: whose
        self._epoch = 0
        self._confirmed = float("-inf")  # when the last ping that came back was sent
        self._listener: asyncio.Task[None] | None = None
        self._closed = False
        self._used_at: dict[str, datetime] = {}  # token id: the last use written (or on its way)
        self._unwritten: dict[str, datetime] = {}
        self._writer: asyncio.Task[None] | None = None
        self.connections = 0  # how many times the listener (re)connected: for diagnostics, tests

    # Looking tokens up ---------------------------------------------------------------------------

    async def publisher_of(self, token: str) -> int | None:
        """The publisher whose token this is, or None."""
        self._start_listening()
        digest = hash_token(token)
        now = self._monotonic()
        known = self._known.get(digest)
        if known is not None and known.until > now and self.hearing(now):
            PUBLISHER_TOKEN_LOOKUPS.labels("memory").inc()
            self._note_use(known.token_id)
            return known.publisher_id
        PUBLISHER_TOKEN_LOOKUPS.labels("database").inc()
        epoch, hearing = self._epoch, self.hearing(now)
        row = await repository.token_by_hash(self.db, digest)
        if row is None or not tokens_equal(row["token_hash"], digest):
            return None
        found = _Known(int(row["publisher_id"]), str(row["id"]), now + CACHE_SECONDS)
        if hearing and epoch == self._epoch:
            self._remember(digest, found)
        self._note_use(found.token_id)
        return found.publisher_id

    def hearing(self, now: float | None = None) -> bool:
        """Whether the listener was heard from recently enough for memory to answer."""
        moment = self._monotonic() if now is None else now
        return moment - self._confirmed < self.fresh_seconds

    def is_known(self, token: str) -> bool:
        """Whether the token would be answered from memory now (for diagnostics and tests)."""
        known = self._known.get(hash_token(token))
        now = self._monotonic()
        return known is not None and known.until > now and self.hearing(now)

    def forget(self, token_id: UUID | str) -> None:
        """Forget a revoked token now, and any lookup of it in flight."""
        self._epoch += 1
        wanted = str(token_id)
        for digest in [d for d, known in self._known.items() if known.token_id == wanted]:
            del self._known[digest]

    def _forget_all(self) -> None:
        self._epoch += 1
        self._known.clear()

    def _remember(self, digest: str, known: _Known) -> None:
        if len(self._known) >= CACHE_SIZE:
            self._known.clear()
        self._known[digest] = known

    # The listener --------------------------------------------------------------------------------

    def _start_listening(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = asyncio.get_running_loop().create_task(self._listen_forever())

    async def _listen_forever(self) -> None:
        failures = 0  # in a row, since the listener last listened
        while not self._closed:
            before = self.connections
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failures == 0 or self.connections > before:
                    log.warning(
                        "publisher-token listener lost (%s): tokens are looked up in the database"
                        " until it is back",
                        type(exc).__name__,
                    )
            failures = 1 if self.connections > before else failures + 1
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS)) - 1])

    async def _listen_once(self) -> None:
        """Listen and ping until the connection fails (it raises then)."""
        connection = await asyncpg.connect(self.db.url, timeout=CONNECT_TIMEOUT)
        try:
            connection.add_termination_listener(lambda _: self._lost())
            await connection.add_listener(repository.TOKENS_CHANNEL, self._on_notice)
            listening_since = self._monotonic()
            self._forget_all()  # what was revoked while no one listened
            self._confirmed = listening_since
            self.connections += 1
            if self.connections > 1:
                log.info("publisher-token listener back")
            while not self._closed:
                await asyncio.sleep(self.ping_seconds)
                sent = self._monotonic()
                # asyncpg's own timeout: asyncio.wait_for (before Python 3.12) may swallow the
                # cancellation that stops this task when it coincides with the answer.
                await connection.fetchval("SELECT 1", timeout=PING_TIMEOUT)
                self._confirmed = sent
        finally:
            self._lost()
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    def _on_notice(self, *notice: Any) -> None:
        payload = notice[-1]  # (connection, pid, channel, payload)
        if payload:
            self.forget(str(payload))
        else:
            self._forget_all()

    def _lost(self) -> None:
        self._confirmed = float("-inf")
        self._forget_all()

    # lastUsedAt ------------------------------------------------------------------------------------

    def _note_use(self, token_id: str) -> None:
        now = self.clock.now()
        last = self._used_at.get(token_id)
        if last is not None and now - last < USED_EVERY:
            return
        if len(self._used_at) >= CACHE_SIZE:
            self._used_at.clear()
        self._used_at[token_id] = now
        self._unwritten[token_id] = now
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_uses())

    async def _write_uses(self) -> None:
        while self._unwritten:
            batch, self._unwritten = self._unwritten, {}
            try:
                await repository.touch_tokens(self.db, {UUID(k): v for k, v in batch.items()})
            except Exception as exc:  # a hint only: noted again at the token's next use
                log.warning("lastUsedAt of publisher tokens not written: %s", type(exc).__name__)
                for token_id in batch:
                    self._used_at.pop(token_id, None)
                return

    async def written(self) -> None:
        """Until the uses noted so far are written (tests; shutting down)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.written()
