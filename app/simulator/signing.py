"""ES256 JWS signed by the simulator's leaf, with the chain in the ``x5c`` header, as Apple signs.

The encoded header never changes, so it is computed once; a signature is one ECDSA P-256 operation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.simulator.certs import CertificateChain

_ES256 = ec.ECDSA(hashes.SHA256())
_P256_BYTES = 32


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class JwsSigner:
    """Signs JSON payloads as compact JWS: header ``{"alg": "ES256", "x5c": [leaf, intermediate, root]}``."""

    def __init__(self, chain: CertificateChain) -> None:
        x5c = [base64.b64encode(der).decode("ascii") for der in chain.x5c()]
        self._header = b64url(compact_json({"alg": "ES256", "x5c": x5c}))
        self._key = chain.leaf_key

    def sign(self, payload: Mapping[str, object]) -> str:
        signing_input = self._header + b"." + b64url(compact_json(payload))
        r, s = decode_dss_signature(self._key.sign(signing_input, _ES256))
        raw = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        return (signing_input + b"." + b64url(raw)).decode("ascii")
