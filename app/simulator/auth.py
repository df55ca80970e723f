"""Apple's API authentication: ``Authorization: Bearer <ES256 JWT>``.

The header's ``alg`` is ES256 and its ``kid`` names a registered key; the signature verifies with
that key; ``iss`` is the key's issuer, ``aud`` is ``appstoreconnect-v1``, ``exp`` is in the future,
``nbf`` (if any) is past, and ``bid`` is a registered app of that issuer. Apple's library sends no
``iat``, so none is required. Anything wrong is a 401 with an empty body.

The token is checked here rather than with pyjwt: pyjwt validates base64 character by character
in Python, which tripled the cost of a request (Apple's client signs a new token for every call,
so each call pays it). Verified tokens are remembered until they expire.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.simulator.errors import unauthorized
from app.simulator.model import App
from app.simulator.state import ApiKey, SimulatorState

AUDIENCE = "appstoreconnect-v1"
_ES256 = ec.ECDSA(hashes.SHA256())
_P256_BYTES = 32


def authenticate(state: SimulatorState, authorization: str | None) -> App:
    token = _bearer_token(authorization)
    cached = state.tokens.get(token)
    app = state.apps.get(cached) if cached is not None else None
    if app is not None:
        return app
    key, claims = verify_token(state, token)
    app = state.apps.get(claims["bid"])
    if app is None or app.issuer_id != key.issuer_id:
        raise unauthorized()
    state.tokens.put(token, app.bundle_id, float(claims["exp"]))
    return app


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    return token.strip()


def _b64url_json(segment: str) -> dict[str, Any]:
    value = json.loads(_b64url(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_token(state: SimulatorState, token: str) -> tuple[ApiKey, dict[str, Any]]:
    """The key that signed ``token`` and its claims, or a 401."""
    try:
        header_segment, payload_segment, signature_segment = token.split(".")
        header = _b64url_json(header_segment)
        key = state.keys.get(str(header.get("kid"))) if header.get("alg") == "ES256" else None
        if key is None:
            raise unauthorized()
        signed = f"{header_segment}.{payload_segment}".encode("ascii")
        _check_signature(key, signed, _b64url(signature_segment))
        claims = _b64url_json(payload_segment)
    except (ValueError, InvalidSignature) as error:
        raise unauthorized() from error
    _check_claims(claims, key.issuer_id)
    return key, claims


def _check_signature(key: ApiKey, signed: bytes, signature: bytes) -> None:
    if len(signature) != 2 * _P256_BYTES:
        raise InvalidSignature
    r = int.from_bytes(signature[:_P256_BYTES], "big")
    s = int.from_bytes(signature[_P256_BYTES:], "big")
    key.public_key.verify(encode_dss_signature(r, s), signed, _ES256)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_claims(claims: dict[str, Any], issuer_id: str) -> None:
    now = time.time()
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    valid = (
        AUDIENCE in audiences
        and claims.get("iss") == issuer_id
        and isinstance(claims.get("bid"), str)
        and _is_number(claims.get("exp"))
        and claims["exp"] > now
        and (claims.get("nbf") is None or (_is_number(claims["nbf"]) and claims["nbf"] <= now))
    )
    if not valid:
        raise unauthorized()
