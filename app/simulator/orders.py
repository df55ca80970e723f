"""Order IDs: each transaction is an order of its own, its ID the transaction ID in base 36.

Apple's order IDs (printed on the customer's receipt) are short upper-case alphanumerics; deriving
them from transaction IDs keeps them unique without storing them.
"""

from __future__ import annotations

import string

_DIGITS = string.digits + string.ascii_uppercase
MAX_LENGTH = 16


def order_id(transaction_id: str) -> str:
    number, digits = int(transaction_id), []
    while number:
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits)) or "0"


def transaction_id_of(order: str) -> str | None:
    """The transaction an order ID names, or ``None`` if it cannot be one of the simulator's."""
    if not order or len(order) > MAX_LENGTH or any(c not in _DIGITS for c in order):
        return None
    return str(int(order, 36))
