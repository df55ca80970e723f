"""Secrets: publisher tokens, encryption at rest, the customer JWT signing key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
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


Purpose = Literal["apple-private-key", "webhook-secret"]
PURPOSES: tuple[Purpose, ...] = ("apple-private-key", "webhook-secret")
SEALED_VERSION = b"v2"
NONCE_BYTES = 12
TAG_BYTES = 16
KID_BYTES = 4
HKDF_SALT = b"storekit-sync secret box"


class SecretBoxError(ValueError):
    """A stored secret that cannot be opened. The message says why; it never holds a secret."""


def row_binding(table: str, *key: str | int) -> str:
    """What a sealed secret is bound to: its table and the key of its row, unambiguously."""
    return json.dumps([table, *key], separators=(",", ":"))


def _hkdf(secret_key: str, info: str, length: int) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=HKDF_SALT, info=info.encode())
    return kdf.derive(secret_key.encode())


def derived_key(secret_key: str, purpose: str) -> bytes:
    """A 256-bit key of SECRET_KEY's for one purpose (HKDF-SHA256): no other purpose's key, and
    SECRET_KEY itself, can be learnt from it."""
    return _hkdf(secret_key, f"storekit-sync key: {purpose}", 32)


@dataclass(frozen=True)
class _PurposeKey:
    """One SECRET_KEY's AES-256-GCM key for one purpose, and its short public id."""

    kid: bytes
    aead: AESGCM = field(repr=False)

    @classmethod
    def derive(cls, secret_key: str, purpose: Purpose) -> _PurposeKey:
        kid = _hkdf(secret_key, f"storekit-sync key id: {purpose}", KID_BYTES).hex().encode()
        return cls(kid, AESGCM(_hkdf(secret_key, f"storekit-sync secret box: {purpose}", 32)))


def _legacy_fernet(secret_key: str) -> Fernet:
    """The format written before keys could rotate: Fernet keyed with SHA-256 of SECRET_KEY."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def _associated_data(kid: bytes, purpose: str, bound_to: str) -> bytes:
    return json.dumps(["storekit-sync", "v2", kid.decode(), purpose, bound_to]).encode()


def _checked(purpose: str) -> Purpose:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    return purpose


def _parse(token: bytes) -> tuple[bytes, bytes, bytes]:
    """(key id, nonce, ciphertext with its tag) of `v2:<kid>:<base64url(nonce || sealed)>`."""
    parts = token.split(b":")
    if len(parts) != 3 or len(parts[1]) != 2 * KID_BYTES:
        raise SecretBoxError("cannot decrypt: not a sealed secret (malformed)")
    try:
        raw = base64.b64decode(parts[2], altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise SecretBoxError("cannot decrypt: not a sealed secret (malformed)") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SecretBoxError("cannot decrypt: not a sealed secret (too short)")
    return parts[1], raw[:NONCE_BYTES], raw[NONCE_BYTES:]


class SecretBox:
    """Encrypts secrets at rest (Apple private keys, webhook secrets).

    `seal` uses AES-256-GCM under a key derived with HKDF-SHA256 from SECRET_KEY, one per
    purpose, and binds the ciphertext to its purpose and row as associated data. `open` also
    accepts what SECRET_KEY_PREVIOUS sealed and the older format (Fernet under SHA-256 of a
    key); `is_current` tells which stored secrets a rotation must seal again."""

    def __init__(self, secret_key: str, previous: Sequence[str] = ()) -> None:
        keys = list(dict.fromkeys([secret_key, *previous]))  # the current key first
        self._current = {p: _PurposeKey.derive(secret_key, p) for p in PURPOSES}
        self._keys: dict[tuple[Purpose, bytes], list[AESGCM]] = {}
        for key in keys:
            for purpose in PURPOSES:
                derived = _PurposeKey.derive(key, purpose)
                self._keys.setdefault((purpose, derived.kid), []).append(derived.aead)
        self._legacy = MultiFernet([_legacy_fernet(key) for key in keys])

    def seal(self, plaintext: str, *, purpose: Purpose, bound_to: str) -> bytes:
        key = self._current[_checked(purpose)]
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(key.kid, purpose, bound_to)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), aad)
        return b":".join([SEALED_VERSION, key.kid, base64.urlsafe_b64encode(nonce + sealed)])

    def open(self, token: bytes, *, purpose: Purpose, bound_to: str) -> str:
        """The plaintext of `token`, sealed for `purpose` and `bound_to` (or in the older format,
        which bound nothing); SecretBoxError if no configured key opens it as such."""
        _checked(purpose)
        if not token.startswith(SEALED_VERSION + b":"):
            return self._open_legacy(token)
        return self._open_sealed(token, purpose, bound_to)

    def _open_sealed(self, token: bytes, purpose: Purpose, bound_to: str) -> str:
        kid, nonce, sealed = _parse(token)
        aad = _associated_data(kid, purpose, bound_to)
        for aead in self._candidates(purpose, kid):
            try:
                return aead.decrypt(nonce, sealed, aad).decode()
            except InvalidTag:
                continue
        raise SecretBoxError(
            "cannot decrypt: the secret was altered, or sealed for another row or purpose"
        )

    def is_current(self, token: bytes, *, purpose: Purpose) -> bool:
        """Sealed for `purpose` with the current SECRET_KEY: false for the older format, for a
        previous key, and for another purpose's key. Says nothing of the row: `open` checks."""
        kid = self._current[_checked(purpose)].kid
        return token.startswith(b":".join([SEALED_VERSION, kid, b""]))

    def _candidates(self, purpose: Purpose, kid: bytes) -> list[AESGCM]:
        found = self._keys.get((purpose, kid))
        if found:
            return found
        if any(known == kid for _, known in self._keys):
            raise SecretBoxError("cannot decrypt: the secret was sealed for another purpose")
        raise SecretBoxError(
            "cannot decrypt: sealed with a key that is neither SECRET_KEY nor SECRET_KEY_PREVIOUS"
        )

    def _open_legacy(self, token: bytes) -> str:
        try:
            return self._legacy.decrypt(token).decode()
        except InvalidToken as exc:
            raise SecretBoxError(
                "cannot decrypt: neither SECRET_KEY nor SECRET_KEY_PREVIOUS opens this secret"
                " (older format)"
            ) from exc

    def encrypt(self, plaintext: str) -> bytes:
        """The older format, bound to nothing, under the current key; `seal` replaces it."""
        return self._legacy.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        """Opens what `encrypt` wrote (under SECRET_KEY or SECRET_KEY_PREVIOUS); `open` replaces
        it and also opens sealed secrets."""
        if token.startswith(SEALED_VERSION + b":"):
            raise SecretBoxError(
                "cannot decrypt: a sealed secret: open it with its purpose and row"
            )
        return self._open_legacy(token)


def load_secret_key(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    return write_once(data_dir / "secret.key", secrets.token_urlsafe(48).encode()).decode()


@dataclass(frozen=True)
class VerifyingKey:
    """A public key customer JWTs may be signed with, by its `kid`, and its JWKS entry."""

    kid: str
    public_key: rsa.RSAPublicKey
    jwk: dict[str, str]

    @classmethod
    def of(cls, public: rsa.RSAPublicKey) -> VerifyingKey:
        full = RSAAlgorithm.to_jwk(public, as_dict=True)
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = hashlib.sha256(der).hexdigest()[:16]
        jwk = {"kty": "RSA", "n": str(full["n"]), "e": str(full["e"])}
        return cls(kid, public, {**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


@dataclass(frozen=True)
class SigningKey:
    """The RS256 key that signs customer JWTs, and the previous one that may still verify them,
    loaded and validated once at start.

    Loading an RSA private key re-validates it (about 27 ms of CPU): it must never happen per request,
    or any `Authorization: Bearer <junk>` would cost that much to refuse."""

    private_pem: bytes
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    public_pem: bytes
    kid: str
    jwk: dict[str, str]
    previous: VerifyingKey | None = None

    def verifying_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key of `kid`: the current key's or the previous one's, else None."""
        if kid == self.kid:
            return self.public_key
        if self.previous is not None and kid == self.previous.kid:
            return self.previous.public_key
        return None

    @property
    def jwks(self) -> list[dict[str, str]]:
        """What `/.well-known/jwks.json` lists: the current key, then the previous one."""
        return [self.jwk] + ([self.previous.jwk] if self.previous is not None else [])


def _generate_rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _rsa_private_key(pem: bytes, name: str) -> rsa.RSAPrivateKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{name} must be an RSA private key in PEM") from exc
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{name} must be an RSA private key in PEM")
    return private


def _rsa_public_key(pem: bytes, name: str) -> rsa.RSAPublicKey:
    """The public key of an RSA key given in PEM, private or public."""
    if b"PRIVATE KEY" in pem:
        return _rsa_private_key(pem, name).public_key()
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{name} must be an RSA key in PEM") from exc
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError(f"{name} must be an RSA key in PEM")
    return public


def _previous_key(configured: str | None, current_kid: str) -> VerifyingKey | None:
    if not configured:
        return None
    previous = VerifyingKey.of(_rsa_public_key(configured.encode(), "JWT_PRIVATE_KEY_PREVIOUS"))
    return None if previous.kid == current_kid else previous


def load_signing_key(
    configured: str | None, data_dir: Path, previous: str | None = None
) -> SigningKey:
    """JWT_PRIVATE_KEY (else the key generated into DATA_DIR) and JWT_PRIVATE_KEY_PREVIOUS."""
    pem = configured.encode() if configured else None
    if pem is None:
        path = data_dir / "jwt-signing-key.pem"
        pem = path.read_bytes() if path.exists() else write_once(path, _generate_rsa_pem())
    private = _rsa_private_key(pem, "JWT_PRIVATE_KEY")
    current = VerifyingKey.of(private.public_key())
    public_pem = current.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        private_pem=pem,
        private_key=private,
        public_key=current.public_key,
        public_pem=public_pem,
        kid=current.kid,
        jwk=current.jwk,
        previous=_previous_key(previous, current.kid),
    )
