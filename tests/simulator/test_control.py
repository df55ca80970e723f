"""The control API under /sim, and running the simulator as its own process."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from appstoreserverlibrary.api_client import APIException
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.simulator import SimulatorState
from app.simulator.server import SimulatorServer
from tests.helpers.simulator import MakeClient, SimApp, act, buy, register_app, wait_until

DAY_MS = 86_400_000


async def test_health_and_the_root_certificate(
    sim: SimulatorServer, control: httpx.AsyncClient
) -> None:
    assert (await control.get("/healthz")).json() == {"status": "ok"}
    der = await control.get("/sim/root.der")
    assert der.headers["content-type"] == "application/pkix-cert"
    assert der.content == sim.root_der
    pem = (await control.get("/sim/root.pem")).content
    assert (
        x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == der.content
    )


async def test_the_control_api_is_tagged_simulator(control: httpx.AsyncClient) -> None:
    paths = (await control.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        if path.startswith("/sim/"):
            assert all(op["tags"] == ["simulator"] for op in operations.values()), path
    assert "/sandbox/inApps/v1/transactions/{transaction_id}" in paths


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"type": "consumable", "expiresDate": 1_900_000_000_000}, 422),
        ({"type": "auto-renewable", "purchaseDate": 2_000, "expiresDate": 1_000}, 422),
        ({"type": "lifetime"}, 422),
        ({"type": "consumable", "environment": "Xcode"}, 422),
        ({"type": "consumable", "bundleId": "com.example.nobody"}, 404),
    ],
)
async def test_purchases_are_validated(
    control: httpx.AsyncClient, app: SimApp, fields: dict[str, object], status: int
) -> None:
    body = {"bundleId": app.bundle_id, "productId": "p"} | fields
    assert (await control.post("/sim/purchases", json=body)).status_code == status


@pytest.mark.parametrize(
    ("product_type", "before", "action"),
    [
        ("non-consumable", [], "renew"),
        ("consumable", [], "expire"),
        ("auto-renewable", [], "recover"),
        ("auto-renewable", [], "grace-period-expired"),
        ("auto-renewable", [], "refund-reversed"),
        ("auto-renewable", ["refund"], "refund"),
        ("auto-renewable", ["refund"], "renew"),
    ],
)
async def test_actions_that_do_not_apply_are_conflicts(
    control: httpx.AsyncClient, app: SimApp, product_type: str, before: list[str], action: str
) -> None:
    original = (await buy(control, app, product_type))["transactionId"]
    for step in before:
        await act(control, original, step, notify=False)
    response = await control.post(f"/sim/purchases/{original}/{action}", json={})
    assert response.status_code == 409, response.text


async def test_unknown_purchases_are_not_found(control: httpx.AsyncClient) -> None:
    assert (await control.get("/sim/purchases/42")).status_code == 404
    assert (await control.post("/sim/purchases/42/renew")).status_code == 404


async def test_a_purchase_is_found_by_any_of_its_ids(
    control: httpx.AsyncClient, app: SimApp
) -> None:
    original = (await buy(control, app))["transactionId"]
    renewal = (await act(control, original, "renew", notify=False))["transactionId"]
    state = (await control.get(f"/sim/purchases/{renewal}")).json()
    assert (state["originalTransactionId"], state["transactionId"]) == (original, renewal)


async def test_a_recovered_subscription_gets_a_whole_period_from_now(
    control: httpx.AsyncClient, app: SimApp
) -> None:
    original = (await buy(control, app))["transactionId"]
    retrying = await act(control, original, "billing-retry", notify=False)
    recovered = await act(control, original, "recover", notify=False)
    assert recovered["expiresDate"] - recovered["purchaseDate"] == 30 * DAY_MS
    assert recovered["purchaseDate"] >= retrying["expiresDate"]
    assert (recovered["status"], recovered["isInBillingRetryPeriod"]) == (1, False)


async def test_a_key_id_cannot_change_its_key(control: httpx.AsyncClient, app: SimApp) -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    body = {"bundleId": "com.example.thief", "keyId": app.key_id, "issuerId": app.issuer_id}
    assert (await control.post("/sim/apps", json=body | {"publicKey": pem})).status_code == 409
    assert (await control.post("/sim/apps", json=body | {"publicKey": "junk"})).status_code == 422
    url = "/sim/apps/com.example.nobody/notification-url"
    assert (await control.put(url, json={"url": None})).status_code == 404


async def test_reset_forgets_everything_but_the_chain(sim: SimulatorServer) -> None:
    with SimulatorServer(SimulatorState(sim.state.chain)) as other:
        async with httpx.AsyncClient(base_url=other.base_url) as control:
            app = await register_app(control, None)
            original = (await buy(control, app))["transactionId"]
            await control.post("/sim/faults", json={"kind": "drop"})
            assert (await control.post("/sim/reset")).status_code == 204
            assert (await control.get(f"/sim/purchases/{original}")).status_code == 404
            assert (await control.get("/sim/faults")).json() == []
            assert (await control.get("/sim/root.der")).content == sim.root_der


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "app.simulator", "--port", str(port)]
    process = subprocess.Popen([*command, "--cert-dir", str(tmp_path)])
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=20)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_process_serves_the_root_saved_in_its_cert_dir(
    simulator_process: str, tmp_path: Path
) -> None:
    served = httpx.get(f"{simulator_process}/sim/root.der").content
    assert served == (tmp_path / "root.der").read_bytes()


async def test_the_calls_to_apples_api_are_counted_by_operation(
    control: httpx.AsyncClient, apple: MakeClient, app: SimApp
) -> None:
    await control.delete("/sim/calls")
    bought = await buy(control, app)
    client = apple(app)
    await client.get_transaction_info(bought["transactionId"])
    await client.get_all_subscription_statuses(bought["transactionId"])
    with contextlib.suppress(APIException):
        await client.get_transaction_info("9999999999999999")
    counted = (await control.get("/sim/calls")).json()
    by_route = {(c["route"], c["status"]): c["count"] for c in counted["calls"]}
    assert by_route[("/inApps/v1/transactions/{transaction_id}", 200)] == 1
    assert by_route[("/inApps/v1/transactions/{transaction_id}", 404)] == 1
    assert by_route[("/inApps/v1/subscriptions/{transaction_id}", 200)] == 1
    assert counted["total"] == 3
    assert (await control.delete("/sim/calls")).status_code == 204
    assert (await control.get("/sim/calls")).json()["total"] == 0
