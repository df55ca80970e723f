"""`storekit-sync rotate-secrets` (docs/api.md §10): every stored secret sealed again with the current
SECRET_KEY, after which SECRET_KEY_PREVIOUS can go.

Each table that keeps secrets is one `SealedColumn`: how to read its rows a batch at a time, and
how to replace one row's ciphertext only if it is still what was read (compare and set). Each
replacement is one statement on the `Database`, a transaction of its own: no lock is held across
rows, and a running service goes on writing meanwhile (a row it changed is read again). A row that
no configured key opens (as sealed for its own row and purpose) is counted and left as it is; the
command then says so and exits non-zero. Nothing here ever logs or prints a secret: a row is named
by its table and key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.admin import repository as admin
from app.apple.gateway import APP_TABLE, KEY_PURPOSE, key_binding
from app.db import Executor, Row
from app.security import Purpose, SecretBox, SecretBoxError
from app.webhooks import repository as webhooks

log = logging.getLogger(__name__)

BATCH_SIZE = 100
TRIES = 5  # reads of a row that keeps changing under the rotation, before it is left for later

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Sealed:
    """One stored secret: its row's key, what it is bound to, and its ciphertext."""

    key: Key
    bound_to: str
    token: bytes


@dataclass(frozen=True)
class SealedColumn:
    """Where one kind of secret is kept, and how to read and replace it."""

    table: str
    purpose: Purpose
    batch: Callable[[Executor, Key | None, int], Awaitable[list[Sealed]]]  # after a key
    one: Callable[[Executor, Key], Awaitable[Sealed | None]]
    replace: Callable[[Executor, Sealed, bytes], Awaitable[bool]]  # False: it changed


@dataclass
class Tally:
    """What a rotation did to one table: counts only, never values."""

    table: str
    resealed: int = 0
    current: int = 0
    unreadable: int = 0
    busy: int = 0  # changed again at every try: left as it was, for another run

    @property
    def ok(self) -> bool:
        return self.unreadable == 0 and self.busy == 0

    def line(self) -> str:
        parts = [
            f"{self.resealed} sealed again",
            f"{self.current} current already",
            f"{self.unreadable} unreadable",
        ]
        if self.busy:
            parts.append(f"{self.busy} changing too often (run again)")
        return f"{self.table}: " + ", ".join(parts)


def apple_private_keys() -> SealedColumn:
    """The apps' App Store Connect private keys (`storekit2_apps`)."""

    def sealed(row: Row) -> Sealed:
        publisher_id, bundle_id = row["publisher_id"], row["bundle_id"]
        token = bytes(row["private_key_encrypted"])
        return Sealed((publisher_id, bundle_id), key_binding(publisher_id, bundle_id), token)

    async def batch(db: Executor, after: Key | None, limit: int) -> list[Sealed]:
        rows = await admin.sealed_keys(db, (after[0], after[1]) if after else (0, ""), limit)
        return [sealed(r) for r in rows]

    async def one(db: Executor, key: Key) -> Sealed | None:
        row = await admin.sealed_key(db, key[0], key[1])
        return None if row is None else sealed(row)

    async def replace(db: Executor, row: Sealed, new: bytes) -> bool:
        return await admin.reseal_key(db, row.key[0], row.key[1], row.token, new)

    return SealedColumn(APP_TABLE, KEY_PURPOSE, batch, one, replace)


def webhook_secrets() -> SealedColumn:
    """The webhook endpoints' shared secrets."""

    def sealed(row: Row) -> Sealed:
        bound_to = webhooks.secret_binding(row["publisher_id"], row["topic"], row["url"])
        return Sealed((row["id"],), bound_to, bytes(row["secret_encrypted"]))

    async def batch(db: Executor, after: Key | None, limit: int) -> list[Sealed]:
        rows = await webhooks.sealed_secrets(db, after[0] if after else 0, limit)
        return [sealed(r) for r in rows]

    async def one(db: Executor, key: Key) -> Sealed | None:
        row = await webhooks.sealed_secret(db, key[0])
        return None if row is None else sealed(row)

    async def replace(db: Executor, row: Sealed, new: bytes) -> bool:
        return await webhooks.reseal_secret(db, row.key[0], row.token, new)

    return SealedColumn("webhook_endpoints", webhooks.SECRET_PURPOSE, batch, one, replace)


SEALED_COLUMNS: tuple[Callable[[], SealedColumn], ...] = (apple_private_keys, webhook_secrets)


async def _rotate_row(
    db: Executor, box: SecretBox, column: SealedColumn, row: Sealed, tally: Tally
) -> None:
    found: Sealed | None = row
    for _ in range(TRIES):
        if found is None:  # deleted meanwhile: nothing left to rotate
            return
        try:
            plain = box.open(found.token, purpose=column.purpose, bound_to=found.bound_to)
        except SecretBoxError as exc:
            tally.unreadable += 1
            log.error("%s %s: %s", column.table, list(found.key), exc)
            return
        if box.is_current(found.token, purpose=column.purpose):
            tally.current += 1
            return
        new = box.seal(plain, purpose=column.purpose, bound_to=found.bound_to)
        if await column.replace(db, found, new):
            tally.resealed += 1
            return
        found = await column.one(db, found.key)  # written meanwhile: look again
    tally.busy += 1


async def rotate(
    db: Executor, box: SecretBox, column: SealedColumn, batch_size: int = BATCH_SIZE
) -> Tally:
    """Seal every secret of `column` that is not sealed with the current key again."""
    tally = Tally(column.table)
    after: Key | None = None
    while rows := await column.batch(db, after, batch_size):
        for row in rows:
            await _rotate_row(db, box, column, row, tally)
        after = rows[-1].key
    return tally


async def rotate_all(db: Executor, box: SecretBox, batch_size: int = BATCH_SIZE) -> list[Tally]:
    return [await rotate(db, box, column(), batch_size) for column in SEALED_COLUMNS]
