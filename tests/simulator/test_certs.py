"""The certificate chain and the JWS it signs, checked by Apple's verifier in strict mode."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)
from cryptography import x509

from app.simulator.certs import (
    INTERMEDIATE_MARKER_OID,
    LEAF_MARKER_OID,
    CertificateChain,
    generate_chain,
    load_or_create_chain,
)
from app.simulator.signing import JwsSigner

BUNDLE_ID = "com.example.certs"


@pytest.fixture(scope="module")
def chain() -> CertificateChain:
    return generate_chain()


def _verifier(root_der: bytes) -> SignedDataVerifier:
    return SignedDataVerifier([root_der], False, Environment.SANDBOX, BUNDLE_ID)


def _transaction(signed_date: datetime) -> dict[str, object]:
    return {
        "transactionId": "1",
        "originalTransactionId": "1",
        "bundleId": BUNDLE_ID,
        "environment": "Sandbox",
        "signedDate": int(signed_date.timestamp() * 1000),
    }


def test_each_certificate_has_what_strict_openssl_needs(chain: CertificateChain) -> None:
    for certificate in chain.certificates():
        extensions = {e.oid for e in certificate.extensions}
        assert x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER in extensions
        assert x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER in extensions
        assert x509.oid.ExtensionOID.KEY_USAGE in extensions
        assert x509.oid.ExtensionOID.BASIC_CONSTRAINTS in extensions
    assert chain.leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert chain.intermediate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


@pytest.mark.parametrize(
    ("which", "oid"), [("intermediate", INTERMEDIATE_MARKER_OID), ("leaf", LEAF_MARKER_OID)]
)
def test_apple_markers_are_non_critical_asn1_null(
    chain: CertificateChain, which: str, oid: x509.ObjectIdentifier
) -> None:
    certificate: x509.Certificate = getattr(chain, which)
    extension = certificate.extensions.get_extension_for_oid(oid)
    assert extension.critical is False
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    assert extension.value.value == b"\x05\x00"


def test_jws_header_is_es256_with_the_chain_leaf_first(chain: CertificateChain) -> None:
    token = JwsSigner(chain).sign({"a": 1})
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert [base64.b64decode(c) for c in header["x5c"]] == chain.x5c()
    payload = token.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {"a": 1}


@pytest.mark.parametrize("signed", [datetime(2016, 3, 1, tzinfo=UTC), datetime.now(UTC)])
def test_apple_verifier_accepts_payloads_signed_at_any_date_in_validity(
    chain: CertificateChain, signed: datetime
) -> None:
    token = JwsSigner(chain).sign(_transaction(signed))
    decoded = _verifier(chain.root_der).verify_and_decode_signed_transaction(token)
    assert decoded.transactionId == "1"


def test_a_verifier_trusting_another_root_rejects(chain: CertificateChain) -> None:
    token = JwsSigner(chain).sign(_transaction(datetime.now(UTC)))
    with pytest.raises(VerificationException) as caught:
        _verifier(generate_chain("other").root_der).verify_and_decode_signed_transaction(token)
    assert caught.value.status == VerificationStatus.VERIFICATION_FAILURE


def test_a_tampered_payload_is_rejected(chain: CertificateChain) -> None:
    header, _, signature = JwsSigner(chain).sign(_transaction(datetime.now(UTC))).split(".")
    claims = _transaction(datetime.now(UTC)) | {"transactionId": "2"}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode())
    token = f"{header}.{forged.decode().rstrip('=')}.{signature}"
    with pytest.raises(VerificationException):
        _verifier(chain.root_der).verify_and_decode_signed_transaction(token)


def test_the_chain_is_saved_once_and_loaded_again(tmp_path: Path) -> None:
    first = load_or_create_chain(tmp_path)
    again = load_or_create_chain(tmp_path)
    assert again.x5c() == first.x5c()
    assert (tmp_path / "root.der").read_bytes() == first.root_der
    assert (tmp_path / "leaf-key.pem").stat().st_mode & 0o077 == 0
    token = JwsSigner(again).sign(_transaction(datetime.now(UTC)))
    assert _verifier(first.root_der).verify_and_decode_signed_transaction(token).bundleId


def test_without_a_directory_each_chain_is_new() -> None:
    assert load_or_create_chain(None).root_der != load_or_create_chain(None).root_der
