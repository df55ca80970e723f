"""Registering apps and their App Store Connect API keys."""

from __future__ import annotations

import secrets
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.simulator.model import App
from app.simulator.schemas import AppCreate, AppOut
from app.simulator.state import SimulatorState

_KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class InvalidKey(ValueError):
    """The public key is not an EC P-256 PEM."""


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as error:
        raise InvalidKey(str(error)) from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidKey("the public key must be EC P-256 (ES256)")
    return key


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _random_key_id() -> str:
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(10))


def _random_app_apple_id() -> int:
    return 1_000_000_000 + secrets.randbelow(9_000_000_000)


def app_out(app: App, private_key: str | None = None) -> AppOut:
    return AppOut(
        bundle_id=app.bundle_id,
        app_apple_id=app.app_apple_id,
        issuer_id=app.issuer_id,
        key_id=app.key_id,
        notification_url=app.notification_url,
        environment=app.environment,
        private_key=private_key,
    )


def register_app(state: SimulatorState, body: AppCreate) -> AppOut:
    """Register (or replace) an app; make its key pair when no public key is given."""
    generated = ec.generate_private_key(ec.SECP256R1()) if body.public_key is None else None
    public = generated.public_key() if generated else load_public_key(str(body.public_key))
    app = App(
        bundle_id=body.bundle_id,
        app_apple_id=body.app_apple_id or _random_app_apple_id(),
        issuer_id=body.issuer_id or str(uuid.uuid4()),
        key_id=body.key_id or _random_key_id(),
        public_key=public,
        notification_url=body.notification_url,
        environment=body.environment,
    )
    state.register_app(app)
    return app_out(app, private_pem(generated) if generated else None)
