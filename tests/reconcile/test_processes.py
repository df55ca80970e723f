"""Real processes: a refund Apple posted while the service was down (the simulator's post
refused) is recovered from Apple's history by the pass a restarted `serve` runs at start, and
applied: access removed, `subscriptionTerminated` delivered."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from app.simulator.server import SimulatorServer
from tests.helpers.api import ADMIN, ADMIN_TOKEN
from tests.helpers.processes import ServiceProcess, clean_env, free_port, is_ready
from tests.helpers.receiver import Receiver
from tests.helpers.shop import MONTHLY_OFFER, Shop


async def _until(what: str, probe: Callable[[], Awaitable[Any]], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := await probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return found


class Service:
    """`storekit-sync serve` on one port, started and stopped as often as the test likes."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port, self.env, self.logs, self.runs = free_port(), env, logs, 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: ServiceProcess | None = None

    async def start(self) -> None:
        self.runs += 1
        log = self.logs / f"serve-{self.runs}.log"
        self.process = ServiceProcess(["serve", "--port", str(self.port)], self.env, log)
        await _until("the service", lambda: asyncio.to_thread(is_ready, self.url))

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stop() == 0, self.process.output()
            self.process = None


async def test_a_refund_posted_while_the_service_was_down_is_recovered_after_restart(
    shop: Shop,
    receiver: Receiver,
    reconcile_database_url: str,
    data_dir: Path,
    simulator: SimulatorServer,
    root_path: Path,
    tmp_path: Path,
) -> None:
    env = clean_env(
        DATABASE_URL=reconcile_database_url,
        DATA_DIR=str(data_dir),
        ADMIN_TOKEN=ADMIN_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        APPLE_ROOT_CERTIFICATES=str(root_path),
        APPLE_API_BASE_URL=simulator.base_url,
        APPLE_ONLINE_CHECKS="false",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
    )
    service = Service(env, tmp_path)
    pid, headers = shop.publisher.id, shop.publisher.headers
    notify = {"url": f"{service.url}/apple/notifications/{pid}"}
    assert (
        await shop.sim.put(f"/sim/apps/{shop.bundle_id}/notification-url", json=notify)
    ).status_code == 200
    secret = secrets.token_hex(16)
    receiver.url("terminated")
    receiver["terminated"].secret = secret
    hook = {
        "url": receiver.url("terminated"),
        "verification": {"name": "HMAC", "options": {"hashAlg": "SHA256", "sharedSecret": secret}},
    }
    customer = shop.customers[0]
    entitlement = f"/3.1/entitlements/customer_id/{customer}/offer_id/{MONTHLY_OFFER}"
    async with httpx.AsyncClient(timeout=10) as http:
        await service.start()
        try:
            url = f"{service.url}/3.1/webhook_subscriptions/subscriptionTerminated"
            put = await http.put(url, json=[hook], headers=headers)
            assert put.status_code == 200, put.text
            bought = await shop.purchase()
            body = {"cleengCustomerId": customer, "transactionId": bought["transactionId"]}
            answer = await http.post(
                f"{service.url}/storekit2/purchases", json=body, headers=headers
            )
            assert answer.status_code == 202, answer.text
            sync = f"{service.url}/purchases/synchronizations/{answer.json()['synchronizationId']}"

            async def finalized() -> bool:
                return bool((await http.get(sync, headers=headers)).json()["status"] == "finalized")

            await _until("the sync", finalized)
        finally:
            service.stop()
        refund = await shop.sim.post(
            f"/sim/purchases/{bought['transactionId']}/refund", json={"notify": True}
        )
        attempts = refund.json()["notification"]["attempts"]
        assert [a["sendAttemptResult"] for a in attempts] == ["SOCKET_ISSUE"], "the service is down"
        assert (await shop.entitlement(customer, MONTHLY_OFFER))["accessGranted"] is True
        await service.start()
        try:

            async def revoked() -> bool:
                granted = (await http.get(f"{service.url}{entitlement}", headers=headers)).json()
                return granted["accessGranted"] is False

            await _until("the refund, recovered from Apple's history, to end access", revoked)
            await _until(
                "subscriptionTerminated",
                lambda: asyncio.sleep(0, receiver["terminated"].verified()),
            )
            log = await http.get(
                f"{service.url}/admin/publishers/{pid}/notifications", headers=ADMIN
            )
        finally:
            service.stop()
    [delivered] = receiver["terminated"].verified()
    assert delivered["topic"] == "subscriptionTerminated"
    assert delivered["data"]["reason"] == "REFUNDED"
    [note] = log.json()["items"]
    assert (note["notificationType"], note["source"], note["status"]) == (
        "REFUND",
        "history",
        "applied",
    )
    assert note["notificationUUID"] == refund.json()["notification"]["notificationUuid"]
