"""Keeping the simulator's state in a JSON file, so that a restart continues where it left off.

The file holds the certificate chain (with the signing key: the file is created 0600), the id
counters (transaction ids never repeat), the apps and their public keys, purchases, notifications
with their send attempts, test notifications, extension requests and app transactions. Faults,
rate-limit usage and signing caches are not kept. It is written whole after each change: to a
temporary file in the same directory, flushed to disk, then renamed over the old one, so that a
crash leaves the old state or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import TypeAdapter

from app.simulator.certs import CertificateChain
from app.simulator.model import (
    App,
    AppTransaction,
    Environment,
    Extension,
    MassExtension,
    NotificationRecord,
    Purchase,
    TestNotification,
)

if TYPE_CHECKING:
    from app.simulator.state import SimulatorState

VERSION = 1
_PURCHASES = TypeAdapter(list[Purchase])
_NOTIFICATIONS = TypeAdapter(list[NotificationRecord])
_TESTS = TypeAdapter(list[TestNotification])
_EXTENSIONS = TypeAdapter(list[Extension])
_MASS = TypeAdapter(list[MassExtension])
_APP_TRANSACTIONS = TypeAdapter(list[AppTransaction])
_WITHOUT_CACHES: Any = {
    "__all__": {"renewal_signed": True, "transactions": {"__all__": {"signed"}}}
}


class StateFileError(ValueError):
    """The state file cannot be read as the simulator's state."""


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _chain_out(chain: CertificateChain) -> dict[str, str]:
    key = chain.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "root": _pem(chain.root),
        "intermediate": _pem(chain.intermediate),
        "leaf": _pem(chain.leaf),
        "leafKey": key.decode(),
    }


def chain_in(data: dict[str, Any]) -> CertificateChain:
    saved = data["chain"]
    key = serialization.load_pem_private_key(saved["leafKey"].encode(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StateFileError("the saved signing key is not an EC key")

    def certificate(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(saved[name].encode())

    return CertificateChain(
        certificate("root"), certificate("intermediate"), certificate("leaf"), key
    )


def _app_out(app: App) -> dict[str, object]:
    public = app.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "bundleId": app.bundle_id,
        "appAppleId": app.app_apple_id,
        "issuerId": app.issuer_id,
        "keyId": app.key_id,
        "publicKey": public.decode(),
        "notificationUrl": app.notification_url,
        "environment": app.environment.value,
    }


def _app_in(saved: dict[str, Any]) -> App:
    key = serialization.load_pem_public_key(saved["publicKey"].encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise StateFileError(f"the key of {saved['bundleId']} is not an EC key")
    return App(
        bundle_id=saved["bundleId"],
        app_apple_id=saved["appAppleId"],
        issuer_id=saved["issuerId"],
        key_id=saved["keyId"],
        public_key=key,
        notification_url=saved["notificationUrl"],
        environment=Environment(saved["environment"]),
    )


def snapshot(state: SimulatorState) -> dict[str, Any]:
    """Everything a restart needs, as JSON values."""
    return {
        "version": VERSION,
        "chain": _chain_out(state.chain),
        "counters": vars(state.counters).copy(),
        "apps": [_app_out(app) for app in state.apps.values()],
        "purchases": _PURCHASES.dump_python(
            list(state.purchases.values()), mode="json", exclude=_WITHOUT_CACHES
        ),
        "notifications": _NOTIFICATIONS.dump_python(
            list(state.notifications.values()), mode="json"
        ),
        "testNotifications": _TESTS.dump_python(
            list(state.test_notifications.values()), mode="json"
        ),
        "extensions": _EXTENSIONS.dump_python(list(state.extensions.values()), mode="json"),
        "massExtensions": _MASS.dump_python(list(state.mass_extensions.values()), mode="json"),
        "appTransactions": _APP_TRANSACTIONS.dump_python(
            list(state.app_transactions.values()), mode="json"
        ),
    }


def _restore_counters(state: SimulatorState, saved: dict[str, int]) -> None:
    for name, value in saved.items():
        setattr(state.counters, name, max(value, getattr(state.counters, name)))


def restore(state: SimulatorState, data: dict[str, Any]) -> None:
    """Put a snapshot's contents into a freshly reset ``state``."""
    _restore_counters(state, data["counters"])
    for saved in data["apps"]:
        state.register_app(_app_in(saved))
    for record in _APP_TRANSACTIONS.validate_python(data["appTransactions"]):
        state.add_app_transaction(record)
    for purchase in _PURCHASES.validate_python(data["purchases"]):
        state.add_purchase(purchase)
    notifications = _NOTIFICATIONS.validate_python(data["notifications"])
    state.notifications = {
        n.notification_uuid: n for n in sorted(notifications, key=lambda n: n.seq)
    }
    state.test_notifications = {
        t.token: t for t in _TESTS.validate_python(data["testNotifications"])
    }
    for extension in _EXTENSIONS.validate_python(data["extensions"]):
        key = (extension.bundle_id, extension.original_transaction_id, extension.request_identifier)
        state.extensions[key] = extension
    for mass in _MASS.validate_python(data["massExtensions"]):
        state.mass_extensions[mass.request_identifier] = mass


class StateFile:
    """The file a simulator keeps its state in."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved snapshot, or ``None`` if there is no file yet."""
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise StateFileError(f"{self.path} is not JSON: {error}") from error
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise StateFileError(f"{self.path} is not a simulator state file (version {VERSION})")
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file atomically: write a temporary file (0600), fsync, rename, fsync the
        directory."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(json.dumps(data, separators=(",", ":")).encode())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
