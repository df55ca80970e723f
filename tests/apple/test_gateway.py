"""Apple's clients and verifiers, one per app and environment: reused while the app stays as it
is, bounded in number, and a client dropped or replaced has its own HTTP pool closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appstoreserverlibrary.models.Environment import Environment

from app.apple.gateway import AppleApp, AppleGateway
from app.apple.library import AppleClient
from app.context import Context
from tests.helpers.keys import p256_pem

KEY = p256_pem()
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def _app(publisher_id: int, changed: int = 0, bundle_id: str = "com.cache.test") -> AppleApp:
    updated_at = SINCE + timedelta(minutes=changed)
    return AppleApp(
        publisher_id, bundle_id, None, "issuer", "KEY1234567", KEY, "Sandbox", updated_at
    )


def _closed(client: AppleClient) -> bool:
    return bool(client._own_http.is_closed)


async def test_a_client_is_reused_until_its_app_changes_then_the_old_one_is_closed(
    context: Context,
) -> None:
    gateway = AppleGateway(context.settings, context.apple.budget, context.activity)
    try:
        first = gateway.client(_app(1), Environment.SANDBOX)
        assert gateway.client(_app(1), Environment.SANDBOX) is first
        assert gateway.client(_app(1), Environment.PRODUCTION) is not first
        changed = gateway.client(_app(1, changed=1), Environment.SANDBOX)
        assert changed is not first
        await gateway.retired()
        assert _closed(first) and not _closed(changed)
        verifier = gateway.verifier(_app(1), Environment.SANDBOX)
        assert gateway.verifier(_app(1), Environment.SANDBOX) is verifier
        assert gateway.verifier(_app(1, changed=1), Environment.SANDBOX) is not verifier
    finally:
        await gateway.close()
    assert _closed(changed)


async def test_clients_and_verifiers_are_bounded_the_least_recently_used_going_first(
    context: Context,
) -> None:
    gateway = AppleGateway(context.settings, context.apple.budget, context.activity, cache_size=3)
    try:
        clients = [gateway.client(_app(p), Environment.SANDBOX) for p in range(1, 4)]
        assert gateway.client(_app(1), Environment.SANDBOX) is clients[0]  # used again: kept
        fourth = gateway.client(_app(4), Environment.SANDBOX)
        await gateway.retired()
        assert len(gateway._clients) == 3
        assert _closed(clients[1]), "the least recently used is dropped and closed"
        assert not any(_closed(c) for c in (clients[0], clients[2], fourth))
        assert gateway.client(_app(2), Environment.SANDBOX) is not clients[1]
        for publisher in range(1, 20):
            gateway.verifier(_app(publisher), Environment.SANDBOX)
        assert len(gateway._verifiers) == 3
        many = [gateway.client(_app(p, changed=p), Environment.SANDBOX) for p in range(5, 50)]
        await gateway.retired()
        assert len(gateway._clients) == 3
        assert sum(not _closed(c) for c in many) == 3
    finally:
        await gateway.close()
