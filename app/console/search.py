"""Finding a customer, a purchase or a sync from what an operator was given: a customer id, an
email, a transaction id, an original transaction id or a synchronization id."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.console import repository
from app.console.web import PREFIX, path_part
from app.db import Executor, Row

MAX_TERM = 256
MAX_BIGINT = 2**63 - 1
MAX_TRANSACTION_DIGITS = 32


class Looking(StrEnum):
    """What the term is, or `any`: everything it could be."""

    ANY = "any"
    CUSTOMER = "customer"
    EMAIL = "email"
    TRANSACTION = "transaction"
    ORIGINAL = "original"
    SYNC = "sync"


LABELS = {
    Looking.ANY: "Anything",
    Looking.CUSTOMER: "Customer ID",
    Looking.EMAIL: "Email",
    Looking.TRANSACTION: "Transaction ID",
    Looking.ORIGINAL: "Original transaction ID",
    Looking.SYNC: "Synchronization ID",
}


@dataclass(frozen=True)
class Hit:
    kind: str  # customer, purchase, sync
    publisher_id: int
    title: str
    detail: str
    href: str


def customer_href(customer_id: int) -> str:
    return f"{PREFIX}/customers/{customer_id}"


def purchase_href(publisher_id: int, original: str) -> str:
    return f"{PREFIX}/publishers/{publisher_id}/purchases/{path_part(original)}"


def sync_href(publisher_id: int, sync_id: str) -> str:
    return f"{PREFIX}/publishers/{publisher_id}/syncs/{path_part(sync_id)}"


def _customer(row: Row) -> Hit:
    detail = f"{row['email']} · publisher {row['publisher_name']} ({row['publisher_id']})"
    return Hit(
        "customer", row["publisher_id"], f"Customer {row['id']}", detail, customer_href(row["id"])
    )


def _sync(row: Row) -> Hit:
    result = row["result"] or row["status"]
    detail = f"transaction {row['transaction_id']} · customer {row['customer_id']} · {result}"
    return Hit(
        "sync",
        row["publisher_id"],
        f"Sync {row['id']}",
        detail,
        sync_href(row["publisher_id"], row["id"]),
    )


def _purchase(row: Row) -> Hit:
    original, publisher = row["original_transaction_id"], row["publisher_id"]
    return Hit(
        "purchase",
        publisher,
        f"Purchase {original}",
        f"publisher {publisher}",
        purchase_href(publisher, original),
    )


def _digits(term: str, most: int) -> bool:
    return term.isascii() and term.isdigit() and len(term) <= most


def wanted(term: str, looking: Looking) -> set[Looking]:
    """The lookups a term can take."""
    kinds: set[Looking] = {looking} if looking != Looking.ANY else set(Looking) - {Looking.ANY}
    if not (_digits(term, 19) and int(term) <= MAX_BIGINT):
        kinds.discard(Looking.CUSTOMER)
    if not _digits(term, MAX_TRANSACTION_DIGITS):
        kinds -= {Looking.TRANSACTION, Looking.ORIGINAL}
    if "@" not in term:
        kinds.discard(Looking.EMAIL)
    return kinds


async def search(db: Executor, term: str, looking: Looking, publisher_id: int | None) -> list[Hit]:
    """What the term names, for the publisher (None: any publisher)."""
    term = term.strip()
    if not term or len(term) > MAX_TERM or "\x00" in term:
        return []
    kinds, hits = wanted(term, looking), []
    if Looking.CUSTOMER in kinds:
        row = await repository.customer(db, int(term), publisher_id)
        hits += [] if row is None else [_customer(row)]
    if Looking.EMAIL in kinds:
        hits += [_customer(r) for r in await repository.customers_by_email(db, term, publisher_id)]
    if kinds & {Looking.TRANSACTION, Looking.ORIGINAL}:
        found = await repository.purchases_by_transaction(db, term, publisher_id)
        hits += [_purchase(r) for r in found]
    if Looking.TRANSACTION in kinds:
        found = await repository.syncs_by_transaction(db, term, publisher_id)
        hits += [_sync(r) for r in found]
    if Looking.SYNC in kinds:
        hits += [_sync(r) for r in await repository.syncs_by_id(db, term, publisher_id)]
    return list({hit.href: hit for hit in hits}.values())
