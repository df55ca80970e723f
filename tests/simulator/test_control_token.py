"""The optional control token: with one, ``/sim`` needs ``Authorization: Bearer <token>``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from app.simulator.server import SimulatorServer
from tests.helpers.processes import BIN, free_port
from tests.helpers.simulator import MakeClient, SimApp, apple_error, buy, wait_until

TOKEN = "control-token-for-tests-0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded() -> Iterator[SimulatorServer]:
    with SimulatorServer(control_token=TOKEN) as server:
        yield server


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["none", "wrong", "basic", "bare", "longer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/sim/apps"), ("GET", "/sim/notifications"), ("POST", "/sim/reset"), ("GET", "/sim")],
)
async def test_control_requests_without_the_token_are_refused(
    guarded: SimulatorServer, headers: dict[str, str], method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as http:
        answer = await http.request(
            method, path, json={"bundleId": "com.example.x"}, headers=headers
        )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_with_the_token_the_control_api_works_and_the_root_stays_public(
    guarded: SimulatorServer, apple: MakeClient
) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as http:
        made = await http.post("/sim/apps", json={"bundleId": "com.example.guarded"}, headers=GOOD)
        assert made.status_code == 201
        assert (await http.get("/sim/root.der")).content == guarded.root_der
        assert (await http.get("/sim/root.pem")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        data = made.json()
        app = SimApp(
            data["bundleId"],
            data["appAppleId"],
            data["issuerId"],
            data["keyId"],
            data["privateKey"],
        )
        body = {"bundleId": app.bundle_id, "productId": "p", "type": "consumable"}
        bought = (await http.post("/sim/purchases", json=body, headers=GOOD)).json()
        apple_path = f"/inApps/v1/transactions/{bought['transactionId']}"
        assert (await http.get(apple_path, headers=GOOD)).status_code == 401
    client = apple(app, base_url=guarded.base_url)
    assert (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def configured_process() -> Iterator[str]:
    """``storekit-sync simulator`` with the token from the environment and a small budget."""
    port = free_port()
    env = os.environ | {"SIMULATOR_CONTROL_TOKEN": TOKEN}
    command = [
        str(BIN),
        "simulator",
        "--port",
        str(port),
        "--rate-window",
        "60",
        "--rate-budget",
        "2",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=20)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_command_takes_the_token_and_the_budgets(
    configured_process: str, apple: MakeClient
) -> None:
    async with httpx.AsyncClient(base_url=configured_process, headers=GOOD) as control:
        assert (await control.get("/sim/faults", headers={"Authorization": ""})).status_code == 401
        limits = (await control.get("/sim/rate-limits")).json()
        assert (limits["windowSeconds"], limits["budget"]) == (60.0, 2)
        made = (await control.post("/sim/apps", json={"bundleId": "com.example.cli"})).json()
        app = SimApp(
            made["bundleId"],
            made["appAppleId"],
            made["issuerId"],
            made["keyId"],
            made["privateKey"],
        )
        bought = await buy(control, app, "consumable")
    client = apple(app, base_url=configured_process)
    for _ in range(2):
        await client.get_transaction_info(bought["transactionId"])
    assert await apple_error(client.get_transaction_info(bought["transactionId"])) == (429, 4290000)
