"""Who is calling: the operator, a publisher, or one customer of a publisher (docs/api.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CallerKind(StrEnum):
    ADMIN = "admin"
    PUBLISHER = "publisher"
    CUSTOMER = "customer"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. A publisher's and a customer's always name their publisher."""

    kind: CallerKind
    publisher_id: int = 0
    customer_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == CallerKind.ADMIN

    @property
    def own_customer(self) -> int | None:
        """The customer a customer token acts for; None for the publisher (any of its own)."""
        return self.customer_id if self.kind == CallerKind.CUSTOMER else None
