"""Everything the simulator holds: its chain, apps and keys, purchases, notifications, requests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from app.simulator.certs import CertificateChain, generate_chain
from app.simulator.faults import FaultBook
from app.simulator.model import (
    App,
    AppTransaction,
    Environment,
    Extension,
    MassExtension,
    NotificationRecord,
    Purchase,
    TestNotification,
    Transaction,
)
from app.simulator.persistence import StateFile, chain_in, restore, snapshot
from app.simulator.ratelimit import RateLimits
from app.simulator.signing import JwsSigner

FIRST_TRANSACTION_ID = 2_000_000_000_000_000
FIRST_WEB_ORDER_LINE_ITEM_ID = 1_000_000_000_000_000
TOKEN_CACHE_SIZE = 10_000

Customer = tuple[str, Environment, str]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Conflict(Exception):
    """A registration that contradicts what is registered."""


@dataclass(frozen=True)
class ApiKey:
    """An App Store Connect API key: it belongs to an issuer and signs the bearer tokens."""

    key_id: str
    issuer_id: str
    public_key: ec.EllipticCurvePublicKey


class TokenCache:
    """Bearer tokens already verified: token -> (bundleId, exp in Unix seconds)."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE) -> None:
        self._size = size
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(self, token: str) -> str | None:
        entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def put(self, token: str, bundle_id: str, expires_at: float) -> None:
        if len(self._tokens) >= self._size:
            self._tokens.clear()
        self._tokens[token] = (bundle_id, expires_at)

    def clear(self) -> None:
        self._tokens.clear()


class Counters:
    """Identifiers that never repeat: transactions, subscription line items, notifications."""

    def __init__(self, first_transaction_id: int) -> None:
        self.transaction = first_transaction_id
        self.line_item = FIRST_WEB_ORDER_LINE_ITEM_ID
        self.notification = 1

    def take(self, name: str) -> int:
        value: int = getattr(self, name)
        setattr(self, name, value + 1)
        return value


class SimulatorState:
    """The simulator's memory. ``clock`` returns "now" in Unix milliseconds (default: wall clock).

    With ``state_file``, the state is read from that file if it exists (its certificate chain
    unless ``chain`` is given) and written to it by :meth:`persist` (see ``persistence``).
    """

    def __init__(
        self,
        chain: CertificateChain | None = None,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        default_notification_url: str | None = None,
        notification_timeout: float = 10.0,
        first_transaction_id: int = FIRST_TRANSACTION_ID,
        rate_limits: RateLimits | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.store = StateFile(state_file) if state_file is not None else None
        saved = self.store.load() if self.store is not None else None
        if chain is None:
            chain = chain_in(saved) if saved is not None else generate_chain()
        self.chain = chain
        self.signer = JwsSigner(self.chain)
        self.clock = clock
        self.faults = FaultBook(random.Random(seed))  # noqa: S311 - not for security
        self.tokens = TokenCache()
        self.default_notification_url = default_notification_url
        self.notification_timeout = notification_timeout
        self.counters = Counters(first_transaction_id)
        self.limits = rate_limits if rate_limits is not None else RateLimits()
        self.reset()
        if saved is not None:
            restore(self, saved)
        self.persist()

    def persist(self) -> None:
        """Write the state to its file, if it has one."""
        if self.store is not None:
            self.store.save(snapshot(self))

    def reset(self) -> None:
        """Forget apps, keys, purchases, faults, notifications, requests and apps' rate budgets;
        keep the chain, the id counters and the rate limits' configuration."""
        self.apps: dict[str, App] = {}
        self.keys: dict[str, ApiKey] = {}
        self.purchases: dict[str, Purchase] = {}
        self.notifications: dict[str, NotificationRecord] = {}
        self.test_notifications: dict[str, TestNotification] = {}
        self.extensions: dict[tuple[str, str, str], Extension] = {}
        self.mass_extensions: dict[str, MassExtension] = {}
        self.app_transactions: dict[str, AppTransaction] = {}
        self._app_transaction_of: dict[Customer, str] = {}
        self._originals: dict[str, str] = {}
        self._customers: dict[Customer, list[str]] = {}
        self.faults.clear()
        self.tokens.clear()
        self.limits.clear()

    def now(self) -> int:
        return self.clock()

    def next_transaction_id(self) -> str:
        return str(self.counters.take("transaction"))

    def next_web_order_line_item_id(self) -> str:
        return str(self.counters.take("line_item"))

    def next_notification_seq(self) -> int:
        return self.counters.take("notification")

    def register_app(self, app: App) -> None:
        """Add or replace an app; its key id may serve several apps of the same issuer."""
        key = self.keys.get(app.key_id)
        if key is not None and not _same_key(key, app):
            raise Conflict(f"key {app.key_id} is registered with another issuer or public key")
        self.keys[app.key_id] = ApiKey(app.key_id, app.issuer_id, app.public_key)
        self.apps[app.bundle_id] = app
        self.tokens.clear()

    def notification_url(self, bundle_id: str) -> str | None:
        app = self.apps.get(bundle_id)
        url = app.notification_url if app is not None else None
        return url or self.default_notification_url

    def add_purchase(self, purchase: Purchase) -> None:
        self.purchases[purchase.original_transaction_id] = purchase
        for transaction in purchase.transactions:
            self._originals[transaction.transaction_id] = purchase.original_transaction_id
        self._customers.setdefault(purchase.customer, []).append(purchase.original_transaction_id)

    def add_transaction(self, purchase: Purchase, transaction: Transaction) -> None:
        purchase.transactions.append(transaction)
        self._originals[transaction.transaction_id] = purchase.original_transaction_id

    def add_app_transaction(self, record: AppTransaction) -> None:
        self.app_transactions[record.app_transaction_id] = record
        customer = (record.bundle_id, record.environment, record.account)
        self._app_transaction_of[customer] = record.app_transaction_id

    def app_transaction_of(self, customer: Customer) -> AppTransaction | None:
        found = self._app_transaction_of.get(customer)
        return self.app_transactions[found] if found is not None else None

    def find(self, transaction_id: str) -> tuple[Purchase, Transaction] | None:
        """The purchase holding ``transaction_id`` (original or renewal) and that transaction."""
        original = self._originals.get(transaction_id)
        if original is None:
            return None
        purchase = self.purchases[original]
        found = next(t for t in purchase.transactions if t.transaction_id == transaction_id)
        return purchase, found

    def customer_of(self, any_id: str) -> Customer | None:
        """Whose transaction (or app transaction) ``any_id`` is."""
        found = self.find(any_id)
        if found is not None:
            return found[0].customer
        app_transaction = self.app_transactions.get(any_id)
        if app_transaction is None:
            return None
        return app_transaction.bundle_id, app_transaction.environment, app_transaction.account

    def purchases_of(self, customer: Customer) -> Iterator[Purchase]:
        """The customer's purchases, oldest first."""
        return (self.purchases[o] for o in self._customers.get(customer, ()))

    def same_purchase(self, transaction_id: str, other_id: str) -> bool:
        original = self._originals.get(transaction_id, transaction_id)
        return original == self._originals.get(other_id, other_id)

    def add_notification(self, record: NotificationRecord) -> None:
        record.seq = self.next_notification_seq()
        self.notifications[record.notification_uuid] = record


def _same_key(key: ApiKey, app: App) -> bool:
    return key.issuer_id == app.issuer_id and key.public_key == app.public_key
