"""`app.jws_segments`: PyJWT's check of a segment's base64url, in C, refusing exactly what PyJWT's
own refuses, with the same errors."""

from __future__ import annotations

import base64
import hashlib
import inspect
import random

import jwt
import pytest
from jwt import api_jws

from app import jws_segments
from app.jws_segments import ORIGINAL, decode_segment

# PyJWT 2.15's `_decode_base64url_segment`, which `decode_segment` copies but for its loop.
COPIED_FROM = "c00c1d4615f8809dd3f46a36f4fd4f8591cc0a9860afc2b7bc0182dc099159a4"
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JUNK = b"=+/ !.\x00\n\t\xff\xc3\xa9~*"


def _outcome(decode: object, segment: bytes) -> tuple[str, object]:
    try:
        return "ok", decode(segment, "header")  # type: ignore[operator]
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _segments() -> list[bytes]:
    rng = random.Random(20261201)
    made = [b"", b"=", b"==", b"===", b"A", b"AA", b"AAA", b"AAAA", b"AA==", b"AAA=", b"A==="]
    for size in range(40):
        raw = rng.randbytes(size)
        made += [base64.urlsafe_b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]
        made.append(base64.b64encode(raw))  # + and / are not base64url
    for _ in range(3000):
        length = rng.randrange(0, 24)
        pool = ALPHABET if rng.random() < 0.6 else ALPHABET + JUNK
        made.append(bytes(rng.choice(pool) for _ in range(length)))
    return made


def test_pyjwt_still_has_the_function_this_copies() -> None:
    source = inspect.getsource(ORIGINAL)
    assert hashlib.sha256(source.encode()).hexdigest() == COPIED_FROM, (
        "PyJWT changed _decode_base64url_segment: compare it with app/jws_segments.py, copy the "
        "change, then update COPIED_FROM"
    )


def test_refuses_and_decodes_exactly_what_pyjwt_does() -> None:
    segments = _segments()
    differ = [s for s in segments if _outcome(decode_segment, s) != _outcome(ORIGINAL, s)]
    assert differ == []
    refused = [s for s in segments if _outcome(ORIGINAL, s)[0] != "ok"]
    assert 0 < len(refused) < len(segments)  # the corpus has both kinds


def test_installed_pyjwt_still_refuses_junk_in_a_signed_token() -> None:
    jws_segments.install()
    assert api_jws.PyJWS._decode_base64url_segment is decode_segment
    token = jwt.encode({"a": 1}, "k" * 32, algorithm="HS256")
    assert jwt.decode(token, "k" * 32, algorithms=["HS256"]) == {"a": 1}
    header, payload, signature = token.split(".")
    for forged in (f"{header}!.{payload}.{signature}", f"{header}.{payload}.{signature}+"):
        with pytest.raises(jwt.DecodeError, match="padding"):
            jwt.decode(forged, "k" * 32, algorithms=["HS256"])
