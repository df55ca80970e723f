"""The console's session tokens and its limit on failed sign-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.security import hash_token
from app.sessions import SessionSigner, SignInLimiter, client_key

KEY = "k" * 48
NOW = datetime(2031, 1, 1, tzinfo=UTC)
LATER = int((NOW + timedelta(hours=1)).timestamp())


def test_a_signed_session_opens_with_its_claims() -> None:
    signer = SessionSigner(KEY)
    token = signer.sign({"kind": "admin", "exp": LATER})
    assert signer.open(token, NOW) == {"kind": "admin", "exp": LATER}


def test_an_altered_expired_foreign_or_malformed_session_does_not_open() -> None:
    signer = SessionSigner(KEY)
    token = signer.sign({"kind": "publisher", "pid": 1, "exp": LATER})
    body, _, mac = token.partition(".")
    forged = SessionSigner(KEY).sign({"kind": "admin", "exp": LATER}).partition(".")[0]
    assert signer.open(f"{forged}.{mac}", NOW) is None
    assert signer.open(token, NOW + timedelta(hours=1)) is None
    assert SessionSigner("x" * 48).open(token, NOW) is None
    for junk in ("", ".", "abc", f"{body}.", f"{body}.!!", f"{body}.{mac}x", "e30.e30"):
        assert signer.open(junk, NOW) is None
    unexpiring = signer.sign({"kind": "admin"})
    assert signer.open(unexpiring, NOW) is None


def test_a_session_never_holds_its_credential() -> None:
    signer = SessionSigner(KEY)
    token = "skp_" + "t" * 43
    mark = signer.credential(token)
    assert mark == signer.fingerprint(hash_token(token))
    assert token not in mark and hash_token(token) not in mark
    assert SessionSigner("x" * 48).credential(token) != mark
    assert signer.credential(token + "x") != mark


def test_failed_sign_ins_are_limited_per_client_in_a_sliding_window() -> None:
    limiter = SignInLimiter(limit=3, window=timedelta(minutes=10))
    for minute in range(3):
        assert limiter.retry_after("203.0.113.7", NOW + timedelta(minutes=minute)) is None
        limiter.failed("203.0.113.7", NOW + timedelta(minutes=minute))
    assert limiter.retry_after("203.0.113.7", NOW + timedelta(minutes=3)) == 7 * 60 + 1
    assert limiter.retry_after("203.0.113.8", NOW + timedelta(minutes=3)) is None
    assert limiter.retry_after("203.0.113.7", NOW + timedelta(minutes=10, seconds=1)) is None
    limiter.failed("203.0.113.9", NOW)
    limiter.succeeded("203.0.113.9")
    assert limiter.retry_after("203.0.113.9", NOW) is None


def test_the_limiter_forgets_clients_before_it_grows_past_its_bound() -> None:
    limiter = SignInLimiter(limit=1, window=timedelta(minutes=10), max_clients=2)
    limiter.failed("a", NOW)
    limiter.failed("b", NOW)
    limiter.failed("c", NOW + timedelta(minutes=1))
    assert limiter.retry_after("c", NOW + timedelta(minutes=1)) is not None
    assert len(limiter._failures) == 2


def test_an_ipv6_client_counts_by_its_64() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "unknown"
