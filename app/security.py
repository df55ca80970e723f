"""Secrets: publisher tokens, encryption at rest, the customer JWT signing key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

PUBLISHER_TOKEN_PREFIX = "skp_"  # noqa: S105 (a prefix, not a secret)


def new_publisher_token() -> str:
    """32 random bytes, URL-safe; the prefix makes a leaked token easy to recognise."""
    return PUBLISHER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so one SHA-256 is a sound one-way store."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _write_private(path: Path, content: bytes) -> None:
    """Create `path` readable by its owner only from the start (never a wider mode narrowed
    afterwards), and write `content` to it; fails if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def write_once(path: Path, content: bytes) -> bytes:
    """Write `content` to `path` unless another process got there first; return what is there.

    The content is written whole to a private temporary file, then linked to `path`: a process
    that starts meanwhile sees the whole file or none, and the first link wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_private(tmp, content)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


class SecretBox:
    """Encrypts secrets at rest (Apple private keys, webhook secrets) with a key from SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: SECRET_KEY changed since this was stored") from exc


def load_secret_key(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    return write_once(data_dir / "secret.key", secrets.token_urlsafe(48).encode()).decode()


@dataclass(frozen=True)
class SigningKey:
    """The RS256 key that signs customer JWTs, loaded and validated once at start.

    Loading an RSA private key re-validates it (about 27 ms of CPU): it must never happen per request,
    or any `Authorization: Bearer <junk>` would cost that much to refuse."""

    private_pem: bytes
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    public_pem: bytes
    kid: str
    jwk: dict[str, str]


def _generate_rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(configured: str | None, data_dir: Path) -> SigningKey:
    pem = configured.encode() if configured else None
    if pem is None:
        path = data_dir / "jwt-signing-key.pem"
        pem = path.read_bytes() if path.exists() else write_once(path, _generate_rsa_pem())
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("JWT_PRIVATE_KEY must be an RSA private key in PEM")
    public = private.public_key()
    full = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk = {"kty": "RSA", "n": str(full["n"]), "e": str(full["e"])}
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha256(der).hexdigest()[:16]
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        private_pem=pem,
        private_key=private,
        public_key=public,
        public_pem=public_pem,
        kid=kid,
        jwk={**jwk, "kid": kid, "use": "sig", "alg": "RS256"},
    )
