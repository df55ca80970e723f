"""docs/api.md §9: secrets at rest, sealed per purpose and row, readable across a change of SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import ConfigurationError, Settings
from app.runtime import build_context, close_context
from app.security import SecretBox, SecretBoxError, row_binding
from tests.helpers.api import make_settings

OLD_KEY = "old-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
KEY = "current-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = "someone-elses-key-0123456789abcdefghijklmnopqrstuvwxyz"
PEM = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg\n-----END PRIVATE KEY-----"
ROW = row_binding("storekit2_integrations", 912345678, "com.acme.tv")
OTHER_ROW = row_binding("storekit2_integrations", 912345679, "com.acme.tv")


def _legacy_token(secret_key: str, plaintext: str) -> bytes:
    """What databases written before key rotation hold: Fernet keyed with SHA-256 of the key."""
    key = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
    return Fernet(key).encrypt(plaintext.encode())


def _hkdf(secret_key: str, info: bytes, length: int) -> bytes:
    kdf = HKDF(hashes.SHA256(), length=length, salt=b"storekit-sync secret box", info=info)
    return kdf.derive(secret_key.encode())


def test_sealed_secrets_open_for_their_row_and_purpose() -> None:
    box = SecretBox(KEY)
    token = box.seal(PEM, purpose="apple-private-key", bound_to=ROW)
    assert box.open(token, purpose="apple-private-key", bound_to=ROW) == PEM
    assert PEM.encode() not in token and KEY.encode() not in token
    assert token != box.seal(PEM, purpose="apple-private-key", bound_to=ROW)  # a fresh nonce
    assert box.is_current(token, purpose="apple-private-key")


def test_the_stored_format_is_aes_gcm_under_an_hkdf_key_per_purpose() -> None:
    """`v2:<key id>:<base64url(nonce || ciphertext || tag)>`, the row and purpose bound as
    associated data: what a later migration of the format can rely on."""
    token = SecretBox(KEY).seal("s3cret", purpose="webhook-secret", bound_to="row-1")
    version, kid, body = token.split(b":")
    assert version == b"v2"
    assert kid == _hkdf(KEY, b"storekit-sync key id: webhook-secret", 4).hex().encode()
    raw = base64.urlsafe_b64decode(body)
    key = _hkdf(KEY, b"storekit-sync secret box: webhook-secret", 32)
    aad = json.dumps(["storekit-sync", "v2", kid.decode(), "webhook-secret", "row-1"]).encode()
    assert AESGCM(key).decrypt(raw[:12], raw[12:], aad) == b"s3cret"


def test_each_purpose_has_its_own_key() -> None:
    box = SecretBox(KEY)
    apple = box.seal("same", purpose="apple-private-key", bound_to=ROW)
    webhook = box.seal("same", purpose="webhook-secret", bound_to=ROW)
    assert apple.split(b":")[1] != webhook.split(b":")[1]
    with pytest.raises(SecretBoxError, match="another purpose"):
        box.open(apple, purpose="webhook-secret", bound_to=ROW)
    assert not box.is_current(apple, purpose="webhook-secret")


def test_a_secret_moved_to_another_row_does_not_open() -> None:
    box = SecretBox(KEY)
    token = box.seal(PEM, purpose="apple-private-key", bound_to=ROW)
    with pytest.raises(SecretBoxError, match="altered, or sealed for another row") as caught:
        box.open(token, purpose="apple-private-key", bound_to=OTHER_ROW)
    assert KEY not in str(caught.value) and PEM not in str(caught.value)


def _flip(token: bytes, index: int) -> bytes:
    version, kid, body = token.split(b":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[index] ^= 0x01
    return b":".join([version, kid, base64.urlsafe_b64encode(bytes(raw))])


@pytest.mark.parametrize("index", [0, 12, -1], ids=["nonce", "ciphertext", "tag"])
def test_a_tampered_secret_does_not_open(index: int) -> None:
    box = SecretBox(KEY)
    token = box.seal(PEM, purpose="apple-private-key", bound_to=ROW)
    with pytest.raises(SecretBoxError, match="altered"):
        box.open(_flip(token, index), purpose="apple-private-key", bound_to=ROW)


@pytest.mark.parametrize(
    "token",
    [b"", b"v2:", b"v2:abcd", b"v2:00000000:not base64!", b"v2:00000000:AAAA", b"junk"],
)
def test_malformed_secrets_are_refused_clearly(token: bytes) -> None:
    with pytest.raises(SecretBoxError, match="cannot decrypt"):
        SecretBox(KEY).open(token, purpose="webhook-secret", bound_to=ROW)


def test_a_wrong_key_fails_and_never_returns_garbage() -> None:
    token = SecretBox(OTHER_KEY).seal(PEM, purpose="apple-private-key", bound_to=ROW)
    with pytest.raises(SecretBoxError, match="neither SECRET_KEY nor SECRET_KEY_PREVIOUS"):
        SecretBox(KEY).open(token, purpose="apple-private-key", bound_to=ROW)
    legacy = _legacy_token(OTHER_KEY, PEM)
    with pytest.raises(SecretBoxError, match="neither SECRET_KEY nor SECRET_KEY_PREVIOUS"):
        SecretBox(KEY).open(legacy, purpose="apple-private-key", bound_to=ROW)


def test_a_previous_key_still_opens_what_it_sealed_until_it_is_resealed() -> None:
    before = SecretBox(OLD_KEY).seal(PEM, purpose="apple-private-key", bound_to=ROW)
    box = SecretBox(KEY, previous=[OLD_KEY])
    assert box.open(before, purpose="apple-private-key", bound_to=ROW) == PEM
    assert not box.is_current(before, purpose="apple-private-key")
    after = box.seal(PEM, purpose="apple-private-key", bound_to=ROW)
    assert box.is_current(after, purpose="apple-private-key")
    assert SecretBox(KEY).open(after, purpose="apple-private-key", bound_to=ROW) == PEM
    with pytest.raises(SecretBoxError):
        SecretBox(KEY).open(before, purpose="apple-private-key", bound_to=ROW)


def test_the_older_format_stays_readable_and_is_never_current() -> None:
    """Databases written before rotation hold Fernet tokens under SHA-256 of SECRET_KEY."""
    box = SecretBox(KEY, previous=[OLD_KEY])
    for secret_key in (KEY, OLD_KEY):
        legacy = _legacy_token(secret_key, PEM)
        assert box.open(legacy, purpose="apple-private-key", bound_to=ROW) == PEM
        assert box.decrypt(legacy) == PEM
        assert not box.is_current(legacy, purpose="apple-private-key")


def test_encrypt_and_decrypt_keep_working_until_every_caller_seals() -> None:
    stored = SecretBox(OLD_KEY).encrypt("whsec-plain")
    box = SecretBox(KEY, previous=[OLD_KEY])
    assert box.decrypt(stored) == "whsec-plain"
    assert box.decrypt(box.encrypt("whsec-plain")) == "whsec-plain"
    sealed = box.seal("whsec-plain", purpose="webhook-secret", bound_to=ROW)
    with pytest.raises(SecretBoxError, match="open it with its purpose and row"):
        box.decrypt(sealed)


def test_an_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown purpose"):
        SecretBox(KEY).seal("x", purpose="publisher-token", bound_to=ROW)  # type: ignore[arg-type]


def test_row_bindings_are_unambiguous() -> None:
    assert row_binding("t", "a:b", "c") != row_binding("t", "a", "b:c")
    assert row_binding("t", 1) != row_binding("t", "1")


def test_secret_key_previous_is_a_comma_separated_list(tmp_path: Path) -> None:
    settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path,
        secret_key=KEY,
        secret_key_previous=f" {OLD_KEY} ,{OTHER_KEY},",
    )
    assert settings.secret_key_previous == (OLD_KEY, OTHER_KEY)
    assert make_settings("postgresql://x@h/db", tmp_path).secret_key_previous == ()


def test_secret_key_previous_keys_are_as_long_as_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        make_settings("postgresql://x@h/db", tmp_path, secret_key_previous="short")


def test_an_invalid_secret_key_previous_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.config import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", "short")
    with pytest.raises(ConfigurationError, match="SECRET_KEY_PREVIOUS"):
        load_settings()


async def test_the_service_opens_secrets_sealed_under_a_previous_key(tmp_path: Path) -> None:
    sealed = SecretBox(OLD_KEY).seal(PEM, purpose="apple-private-key", bound_to=ROW)
    settings: Settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path,
        secret_key=KEY,
        secret_key_previous=OLD_KEY,
    )
    context = await build_context(settings)  # the pool connects lazily: no database needed
    try:
        assert context.secrets.open(sealed, purpose="apple-private-key", bound_to=ROW) == PEM
        assert not context.secrets.is_current(sealed, purpose="apple-private-key")
    finally:
        await close_context(context)
