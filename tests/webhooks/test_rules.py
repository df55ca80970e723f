"""The pure rules under delivery: the retry delay, Retry-After, which addresses are public."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.webhooks.schedule import MAX_RETRY_AFTER, next_delay, retry_after_seconds
from app.webhooks.targets import is_public

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_next_delay_follows_the_schedule_with_jitter() -> None:
    schedule = (5.0, 300.0)
    for tries, base in ((1, 5.0), (2, 300.0)):
        delays = {next_delay(schedule, tries) for _ in range(50)}
        assert all(d is not None and base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(delays) > 1
    assert next_delay(schedule, 3) is None
    assert next_delay((0.0,), 1) == 0.0


def test_retry_after_wins_only_when_longer() -> None:
    assert next_delay((5.0,), 1, retry_after=60.0) == 60.0
    delay = next_delay((5.0,), 1, retry_after=1.0)
    assert delay is not None and delay >= 4.5
    assert next_delay((5.0,), 2, retry_after=60.0) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("99999999", MAX_RETRY_AFTER),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
