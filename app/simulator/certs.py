"""The simulator's certificate chain: root CA -> intermediate CA -> leaf, all EC P-256.

It is shaped like Apple's so that Apple's ``SignedDataVerifier`` accepts it in strict mode (OpenSSL's
``X509_STRICT``): every certificate carries subject and authority key identifiers, key usage and basic
constraints; the intermediate carries Apple's marker 1.2.840.113635.100.6.2.1 and the leaf 1.2.840.113635.100.6.11.1,
both non-critical with an ASN.1 NULL value. The verifier checks the chain at the payload's ``signedDate`` when
online checks are off, so validity starts in 2015 and lasts ten years from now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

INTERMEDIATE_MARKER_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
LEAF_MARKER_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
ASN1_NULL = b"\x05\x00"
NOT_BEFORE = datetime(2015, 1, 1, tzinfo=UTC)
VALIDITY_AFTER_NOW = timedelta(days=3650)

_ROOT_FILE = "root.pem"
_INTERMEDIATE_FILE = "intermediate.pem"
_LEAF_FILE = "leaf.pem"
_LEAF_KEY_FILE = "leaf-key.pem"
_ROOT_DER_FILE = "root.der"


@dataclass(frozen=True)
class CertificateChain:
    """The three certificates and the leaf's private key, which signs every JWS."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def x5c(self) -> list[bytes]:
        """DER of leaf, intermediate and root: the order of a JWS ``x5c`` header."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self.certificates()]

    def certificates(self) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
        return self.leaf, self.intermediate, self.root


@dataclass(frozen=True)
class _Subject:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "storekit-sync simulator"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "storekit-sync"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _new_subject(common_name: str) -> _Subject:
    return _Subject(_name(common_name), ec.generate_private_key(ec.SECP256R1()))


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: _Subject, issuer: _Subject, is_ca: bool, marker: x509.ObjectIdentifier | None
) -> x509.Certificate:
    public_key = subject.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject.name)
        .issuer_name(issuer.name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(datetime.now(UTC) + VALIDITY_AFTER_NOW)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(is_ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if marker is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(marker, ASN1_NULL), False)
    return builder.sign(issuer.key, hashes.SHA256())


def generate_chain(label: str = "storekit-sync simulator") -> CertificateChain:
    """A fresh chain; ``label`` goes into the common names (handy to tell two chains apart)."""
    root = _new_subject(f"{label} Root CA")
    intermediate = _new_subject(f"{label} Intermediate CA")
    leaf = _new_subject(f"{label} Signing")
    return CertificateChain(
        root=_certificate(root, root, is_ca=True, marker=None),
        intermediate=_certificate(intermediate, root, is_ca=True, marker=INTERMEDIATE_MARKER_OID),
        leaf=_certificate(leaf, intermediate, is_ca=False, marker=LEAF_MARKER_OID),
        leaf_key=leaf.key,
    )


def save_chain(chain: CertificateChain, directory: Path) -> None:
    """Write the chain (PEM, plus ``root.der``) and the leaf key (PKCS8 PEM, mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / _ROOT_FILE).write_bytes(chain.root.public_bytes(pem))
    (directory / _ROOT_DER_FILE).write_bytes(chain.root_der)
    (directory / _INTERMEDIATE_FILE).write_bytes(chain.intermediate.public_bytes(pem))
    (directory / _LEAF_FILE).write_bytes(chain.leaf.public_bytes(pem))
    key_path = directory / _LEAF_KEY_FILE
    key_path.write_bytes(_private_pem(chain.leaf_key))
    key_path.chmod(0o600)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_chain(directory: Path) -> CertificateChain:
    key = serialization.load_pem_private_key((directory / _LEAF_KEY_FILE).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / _LEAF_KEY_FILE} is not an EC private key")
    return CertificateChain(
        root=x509.load_pem_x509_certificate((directory / _ROOT_FILE).read_bytes()),
        intermediate=x509.load_pem_x509_certificate((directory / _INTERMEDIATE_FILE).read_bytes()),
        leaf=x509.load_pem_x509_certificate((directory / _LEAF_FILE).read_bytes()),
        leaf_key=key,
    )


def load_or_create_chain(directory: Path | None) -> CertificateChain:
    """The chain saved in ``directory``, or a new one (saved there when a directory is given)."""
    if directory is not None and (directory / _LEAF_KEY_FILE).exists():
        return load_chain(directory)
    chain = generate_chain()
    if directory is not None:
        save_chain(chain, directory)
    return chain
