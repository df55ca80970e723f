"""Get Transaction History and Get Refund History: a customer's transactions, filtered, 20 a page.

Apple sorts the history by when each transaction last changed (a refund moves it to the end),
oldest first unless ``sort=DESCENDING``. The ``revision`` of an answer marks its last
transaction; asked again with it, the history goes on after that transaction, so a revision kept
from the last page later yields only what changed since. Filters (``startDate``/``endDate`` on the
purchase date, ``productId``, ``productType``, ``subscriptionGroupIdentifier``,
``inAppOwnershipType``, ``revoked``) are checked as Apple checks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from app.simulator import tokens
from app.simulator.calls import PAGE_SIZE, Scope
from app.simulator.errors import ErrorCode, apple_error
from app.simulator.model import OwnershipType, ProductType, Purchase, Transaction
from app.simulator.payloads import signed_transaction
from app.simulator.state import Customer

Key = tuple[int, int]
PRODUCT_TYPES = frozenset(t.history_name for t in ProductType)
OWNERSHIP_TYPES = frozenset(t.value for t in OwnershipType)
BOOLEANS = {"true": True, "false": False}
_END = 2**62


@dataclass(frozen=True)
class HistoryQuery:
    start: int | None = None
    end: int | None = None
    product_ids: frozenset[str] = frozenset()
    product_types: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    ownership: str | None = None
    revoked: bool | None = None
    descending: bool = False

    def matches(self, purchase: Purchase, transaction: Transaction) -> bool:
        bought = transaction.purchase_date
        return (
            (self.start is None or bought >= self.start)
            and (self.end is None or bought < self.end)
            and _among(purchase.product_id, self.product_ids)
            and _among(purchase.product_type.history_name, self.product_types)
            and _among(purchase.subscription_group_identifier, self.groups)
            and self.ownership in (None, purchase.ownership.value)
            and self.revoked in (None, transaction.revocation_date is not None)
        )


def _among(value: str | None, allowed: frozenset[str]) -> bool:
    return not allowed or value in allowed


def _date(params: QueryParams, name: str, code: ErrorCode) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise apple_error(code)
    return int(raw)


def _values(
    params: QueryParams, name: str, code: ErrorCode, allowed: frozenset[str] | None = None
) -> frozenset[str]:
    values = params.getlist(name)
    if any(not v or (allowed is not None and v not in allowed) for v in values):
        raise apple_error(code)
    return frozenset(values)


def _one(params: QueryParams, name: str, allowed: Iterable[str], code: ErrorCode) -> str | None:
    raw = params.get(name)
    if raw is not None and raw not in allowed:
        raise apple_error(code)
    return raw


def parse_query(params: QueryParams) -> HistoryQuery:
    start = _date(params, "startDate", ErrorCode.INVALID_START_DATE)
    end = _date(params, "endDate", ErrorCode.INVALID_END_DATE)
    if start is not None and end is not None and start >= end:
        raise apple_error(ErrorCode.START_DATE_AFTER_END_DATE)
    revoked = _one(params, "revoked", {"true", "false", "True", "False"}, ErrorCode.INVALID_REVOKED)
    sort = _one(params, "sort", ("ASCENDING", "DESCENDING"), ErrorCode.INVALID_SORT)
    return HistoryQuery(
        start=start,
        end=end,
        product_ids=_values(params, "productId", ErrorCode.INVALID_PRODUCT_ID),
        product_types=_values(params, "productType", ErrorCode.INVALID_PRODUCT_TYPE, PRODUCT_TYPES),
        groups=_values(
            params, "subscriptionGroupIdentifier", ErrorCode.INVALID_SUBSCRIPTION_GROUP_IDENTIFIER
        ),
        ownership=_one(
            params, "inAppOwnershipType", OWNERSHIP_TYPES, ErrorCode.INVALID_IN_APP_OWNERSHIP_TYPE
        ),
        revoked=BOOLEANS[revoked.lower()] if revoked is not None else None,
        descending=sort == "DESCENDING",
    )


def _revision_key(revision: str | None, descending: bool) -> Key:
    if revision is None:
        return (_END, 0) if descending else (-1, 0)
    parts = tokens.decode(revision, int, int)
    if parts is None:
        raise apple_error(ErrorCode.INVALID_REQUEST_REVISION)
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class Page:
    items: list[tuple[Purchase, Transaction]]
    revision: str
    has_more: bool


def paginate(
    entries: Iterable[tuple[Key, Purchase, Transaction]], revision: str | None, descending: bool
) -> Page:
    """The next ``PAGE_SIZE`` entries after ``revision`` in key order (or reverse order)."""
    after = _revision_key(revision, descending)
    ordered = sorted(entries, key=lambda entry: entry[0], reverse=descending)
    rest = [e for e in ordered if (e[0] < after if descending else e[0] > after)]
    page = rest[:PAGE_SIZE]
    last = tokens.encode(*page[-1][0]) if page else tokens.encode(*after)
    return Page([(p, t) for _, p, t in page], last, len(rest) > len(page))


def _transactions(scope: Scope, customer: Customer) -> Iterator[tuple[Purchase, Transaction]]:
    for purchase in scope.state.purchases_of(customer):
        for transaction in purchase.transactions:
            yield purchase, transaction


def _signed(scope: Scope, page: Page) -> list[str]:
    now = scope.state.now()
    return [signed_transaction(scope.state.signer, p, t, now) for p, t in page.items]


def history_body(
    scope: Scope, customer: Customer, query: HistoryQuery, revision: str | None
) -> dict[str, object]:
    """HistoryResponse."""
    entries = (
        ((t.modified_date, int(t.transaction_id)), p, t)
        for p, t in _transactions(scope, customer)
        if query.matches(p, t)
    )
    page = paginate(entries, revision, query.descending)
    return scope.envelope(customer) | {
        "revision": page.revision,
        "hasMore": page.has_more,
        "signedTransactions": _signed(scope, page),
    }


def _refunded(transaction: Transaction) -> bool:
    kind = transaction.revocation_type
    return transaction.revocation_date is not None and (kind or "").startswith("REFUND")


def refund_body(scope: Scope, customer: Customer, revision: str | None) -> dict[str, object]:
    """RefundHistoryResponse: the customer's refunded transactions, by refund date."""
    entries = (
        ((t.revocation_date or 0, int(t.transaction_id)), p, t)
        for p, t in _transactions(scope, customer)
        if _refunded(t)
    )
    page = paginate(entries, revision, descending=False)
    return {
        "signedTransactions": _signed(scope, page),
        "revision": page.revision,
        "hasMore": page.has_more,
    }
