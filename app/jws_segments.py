"""PyJWT's check of a JWS segment's base64url, the same check in C instead of Python.

PyJWT refuses a segment holding anything outside the base64url alphabet (GHSA-hxm8-2xgr-2p9m) by
testing it one character at a time in Python. Apple's signed payloads carry their 3 KB certificate
chain in the header, and Apple's library decodes each header several times: that loop was the
largest single cost of verifying a transaction (about 7 % of the service's CPU per sync).

`install()` replaces PyJWS's `_decode_base64url_segment` with the same function in which only
that loop is a regular expression: the same inputs are refused with the same errors, every other
step (padding, decoding, the re-encoding round trip) is PyJWT's own.
`tests/test_jws_segments.py` checks both against each other on valid, padded and hostile
segments, and fails if a PyJWT release changes the function this one was copied from.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from jwt import api_jws
from jwt.exceptions import DecodeError
from jwt.utils import base64url_decode, base64url_encode

_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")
ORIGINAL: Callable[[bytes, str], bytes] = api_jws.PyJWS._decode_base64url_segment


def decode_segment(segment: bytes, name: str) -> bytes:
    """PyJWT 2.15's `_decode_base64url_segment`, its alphabet loop as one regular expression."""
    padding = 0
    stripped = segment
    while stripped.endswith(b"="):
        stripped = stripped[:-1]
        padding += 1
        if padding > 2:
            raise DecodeError(f"Invalid {name} padding")
    if padding and len(segment) % 4 != 0:
        raise DecodeError(f"Invalid {name} padding")
    if len(stripped) % 4 == 1 or _ALPHABET.fullmatch(stripped) is None:
        raise DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64url_decode(stripped)
    except (TypeError, binascii.Error) as err:
        raise DecodeError(f"Invalid {name} padding") from err
    if base64url_encode(decoded) != stripped:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


def install() -> None:
    """Every PyJWS in this process decodes its segments with `decode_segment` (idempotent)."""
    api_jws.PyJWS._decode_base64url_segment = staticmethod(decode_segment)  # type: ignore[method-assign]
