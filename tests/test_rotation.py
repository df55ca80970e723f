"""docs/api.md §10: `storekit-sync rotate-secrets` seals every stored secret again with SECRET_KEY, so
that SECRET_KEY_PREVIOUS can go; the service reads them all afterwards with the new key alone."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.apple.gateway import key_binding
from app.clock import MovableClock
from app.config import Settings
from app.context import Context
from app.migrate import migrate
from app.runtime import make_worker
from app.security import SecretBox
from app.simulator.server import SimulatorServer
from app.webhooks.repository import secret_binding
from tests.helpers.api import running
from tests.helpers.processes import BIN, clean_env
from tests.helpers.receiver import Receiver
from tests.helpers.shop import Shop, sync_settings

OLD = "old-" + secrets.token_urlsafe(40)
NEW = "new-" + secrets.token_urlsafe(40)
TOPICS = ("inappPurchaseSyncResult", "subscriptionCreated")
KEYS = "SELECT publisher_id, bundle_id, private_key_encrypted AS sealed FROM storekit2_apps"
ENDPOINTS = "SELECT publisher_id, topic, url, secret_encrypted AS sealed FROM webhook_endpoints"


@pytest.fixture
def rotation_url(scratch_url: str) -> str:
    """A database of its own: the rotation seals every secret in it again."""
    migrate(scratch_url)
    return scratch_url


@pytest.fixture
def settings(
    rotation_url: str, data_dir: Path, simulator: SimulatorServer, root_path: Path
) -> Settings:
    return sync_settings(
        rotation_url,
        data_dir,
        simulator,
        root_path,
        secret_key=OLD,
        webhook_allow_private_networks=True,
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _rotate(database_url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    values = {"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path), "LOG_FORMAT": "json"}
    return subprocess.run(
        [str(BIN), "rotate-secrets", "--batch-size", "2"],
        env=clean_env(**(values | env)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _subscribe(shop: Shop, receiver: Receiver) -> dict[str, str]:
    """An endpoint of its own per topic; returns each one's secret, as the service generated."""
    shown = {}
    for topic in TOPICS:
        name = f"rotation-{topic}-{secrets.token_hex(4)}"
        answer = await shop.client.put(
            f"/3.1/webhook_subscriptions/{topic}",
            json=[{"url": receiver.url(name)}],
            headers=shop.publisher.headers,
        )
        assert answer.status_code == 200, answer.text
        secret = answer.json()[0]["verification"]["options"]["sharedSecret"]
        receiver[name].secret = secret
        shown[name] = secret
    return shown


async def _to_the_old_format(context: Context, box: SecretBox) -> None:
    """The Apple key and the first endpoint's secret as written before secrets were sealed
    (Fernet, bound to nothing), under the old key."""
    key = await context.db.fetchrow(KEYS)
    assert key is not None
    binding = key_binding(key["publisher_id"], key["bundle_id"])
    pem = box.open(key["sealed"], purpose="apple-private-key", bound_to=binding)
    await context.db.execute(
        "UPDATE storekit2_apps SET private_key_encrypted = $1", box.encrypt(pem)
    )
    endpoint = await context.db.fetchrow(ENDPOINTS + " WHERE topic = $1", TOPICS[0])
    assert endpoint is not None
    binding = secret_binding(endpoint["publisher_id"], endpoint["topic"], endpoint["url"])
    secret = box.open(endpoint["sealed"], purpose="webhook-secret", bound_to=binding)
    await context.db.execute(
        "UPDATE webhook_endpoints SET secret_encrypted = $1 WHERE topic = $2",
        box.encrypt(secret),
        TOPICS[0],
    )


async def _all_current(context: Context) -> list[str]:
    """Every stored secret, opened with the new key alone (no SECRET_KEY_PREVIOUS)."""
    new_only = SecretBox(NEW)
    opened = []
    for row in await context.db.fetch(KEYS):
        assert new_only.is_current(row["sealed"], purpose="apple-private-key")
        binding = key_binding(row["publisher_id"], row["bundle_id"])
        opened.append(new_only.open(row["sealed"], purpose="apple-private-key", bound_to=binding))
    for row in await context.db.fetch(ENDPOINTS):
        assert new_only.is_current(row["sealed"], purpose="webhook-secret")
        binding = secret_binding(row["publisher_id"], row["topic"], row["url"])
        opened.append(new_only.open(row["sealed"], purpose="webhook-secret", bound_to=binding))
    return opened


async def test_old_keys_and_the_old_format_become_current_and_the_service_reads_them(
    shop: Shop,
    context: Context,
    receiver: Receiver,
    settings: Settings,
    rotation_url: str,
    tmp_path: Path,
) -> None:
    shown = await _subscribe(shop, receiver)
    await _to_the_old_format(context, context.secrets)

    done = await asyncio.to_thread(
        _rotate, rotation_url, tmp_path, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "storekit2_apps: 1 sealed again, 0 current already, 0 unreadable",
        "webhook_endpoints: 2 sealed again, 0 current already, 0 unreadable",
    ]
    opened = await _all_current(context)
    assert set(shown.values()) <= set(opened)
    for secret in opened:  # counts only, never a value
        assert secret not in done.stdout + done.stderr

    again = await asyncio.to_thread(_rotate, rotation_url, tmp_path, SECRET_KEY=NEW)
    assert again.returncode == 0, again.stderr
    assert "webhook_endpoints: 0 sealed again, 2 current already, 0 unreadable" in again.stdout

    # The service with the new key alone: a sync calls Apple with the app's key (the simulator
    # checks its signature) and signs its webhooks with the endpoints' secrets.
    new_only = settings.model_copy(update={"secret_key": NEW, "secret_key_previous": ()})
    async with running(new_only, MovableClock()) as (app, client):
        after: Context = app.state.context
        rotated = Shop(client, shop.sim, after, shop.publisher, shop.bundle_id, shop.customers)
        purchase = await rotated.purchase()
        sync_id = await rotated.accepted(rotated.customers[0], purchase["transactionId"])
        assert await make_worker(after).drain() >= 1
        assert (await rotated.poll(sync_id))["result"] == "SUBSCRIPTION_CREATED"
        for name in shown:  # each verified with the secret shown when it was subscribed
            assert len(receiver[name].verified()) == 1, name


async def test_a_secret_no_key_opens_is_reported_and_left_alone(
    shop: Shop, context: Context, receiver: Receiver, rotation_url: str, tmp_path: Path
) -> None:
    await _subscribe(shop, receiver)
    stranger = SecretBox("neither-" + secrets.token_urlsafe(40))
    endpoint = await context.db.fetchrow(ENDPOINTS + " WHERE topic = $1", TOPICS[0])
    assert endpoint is not None
    binding = secret_binding(endpoint["publisher_id"], endpoint["topic"], endpoint["url"])
    foreign = stranger.seal("a secret of another key", purpose="webhook-secret", bound_to=binding)
    await context.db.execute(
        "UPDATE webhook_endpoints SET secret_encrypted = $1 WHERE topic = $2", foreign, TOPICS[0]
    )

    done = await asyncio.to_thread(
        _rotate, rotation_url, tmp_path, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD
    )
    assert done.returncode == 1
    assert "webhook_endpoints: 1 sealed again, 0 current already, 1 unreadable" in done.stdout
    assert "storekit2_apps: 1 sealed again" in done.stdout
    assert "keep SECRET_KEY_PREVIOUS" in done.stderr and "webhook_endpoints" in done.stderr
    assert "a secret of another key" not in done.stdout + done.stderr
    left = await context.db.fetchval(
        "SELECT secret_encrypted FROM webhook_endpoints WHERE topic = $1", TOPICS[0]
    )
    assert left == foreign
