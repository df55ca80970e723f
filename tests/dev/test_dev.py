"""`storekit-sync dev` as a newcomer runs it: the printed curl works and the webhook shows up."""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.helpers.processes import ServiceProcess, clean_env, free_port, wait_until


def _run_dev(tmp_path: Path, data_dir: Path, name: str) -> tuple[ServiceProcess, int, int]:
    port, sim_port = free_port(), free_port()
    env = clean_env(DATA_DIR=str(data_dir), COLUMNS="200")
    args = ["dev", "--port", str(port), "--simulator-port", str(sim_port)]
    return ServiceProcess(args, env, tmp_path / name), port, sim_port


def _synced(port: int, body: str, headers: dict[str, str]) -> dict[str, object]:
    """Register as the printed curl does, and wait for the sync to finalize."""
    answer = httpx.post(
        f"http://127.0.0.1:{port}/storekit2/purchases", content=body, headers=headers
    )
    assert answer.status_code == 202, answer.text
    sync_url = (
        f"http://127.0.0.1:{port}/purchases/synchronizations/{answer.json()['synchronizationId']}"
    )
    publisher = {"X-Publisher-Token": headers["X-Publisher-Token"]}
    wait_until(
        lambda: httpx.get(sync_url, headers=publisher).json()["status"] == "finalized",
        30,
        "the sync",
    )
    return dict(httpx.get(sync_url, headers=publisher).json())


def _printed_curl(output: str) -> list[str]:
    start = output.index("curl -s -X POST")
    command = output[start : output.index("\n\n", start)].replace("\\\n", " ")
    return shlex.split(command)


def _request_from_curl(words: list[str]) -> tuple[str, dict[str, str], str]:
    url = next(w for w in words if w.startswith("http://"))
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    body = words[words.index("-d") + 1]
    return url, headers, body


def _run_printed(line: str) -> httpx.Response:
    """One printed `curl` line, run as curl would (-X, -H, -d and the URL)."""
    words = shlex.split(line)
    url = next(w for w in words if w.startswith("http://"))
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    body = words[words.index("-d") + 1] if "-d" in words else None
    return httpx.request(method, url, headers=headers, content=body, timeout=30)


def _follow_ups(output: str) -> list[str]:
    start = output.index("More to try:")
    block = output[start : output.index("\n\n", start + len("More to try:\n\n"))]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def _check_follow_ups(output: str) -> None:
    """Every command dev prints under "More to try" works as printed, and says what it does."""
    assert "valid 15 minutes" in output, "the customer JWT's lifetime is printed"
    for product in ("com.demo.tv.pro.monthly", "com.demo.tv.lifetime"):
        assert product in output, product
    assert re.search(
        r"com\.demo\.tv\.appletv\.pro\.monthly +auto-renewable +-> offer S100000001_US", output
    )
    lines = _follow_ups(output)
    assert len(lines) >= 10, lines
    for line in lines:
        answer = _run_printed(line)
        assert answer.status_code in (200, 201), (line, answer.status_code, answer.text)
        if "/tokens" in line:
            assert answer.json()["jwt"], "a customer JWT for another customer"


def test_dev_prints_a_curl_that_works(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dev, port, sim_port = _run_dev(tmp_path, data_dir, "dev.log")
    try:
        wait_until(lambda: "Then poll" in dev.output(), 60, "dev to print its welcome")
        url, headers, body = _request_from_curl(_printed_curl(dev.output()))
        assert url == f"http://127.0.0.1:{port}/storekit2/purchases"
        assert _synced(port, body, headers)["result"] == "SUBSCRIPTION_CREATED"
        # A purchase of the second app, registered the same way, without naming its app.
        tv = "com.demo.tv.appletv"
        sim = f"http://127.0.0.1:{sim_port}/sim/purchases"
        made = {"bundleId": tv, "productId": f"{tv}.pro.monthly", "type": "auto-renewable"}
        bought = httpx.post(sim, json=made).json()
        second = json.loads(body) | {"transactionId": bought["transactionId"]}
        synced = _synced(port, json.dumps(second), headers)
        assert (synced["result"], synced["offerId"]) == ("SUBSCRIPTION_CREATED", "S100000001_US")
        wait_until(
            lambda: "inappPurchaseSyncResult" in dev.output(), 30, "the webhook to be printed"
        )
        assert re.search(r"webhook inappPurchaseSyncResult .*signature ok", dev.output())
        _check_follow_ups(dev.output())
        first_publisher = re.search(r"publisher\s+(\d+)", dev.output())
    finally:
        assert dev.stop(signal.SIGINT) == 0, dev.output()
    assert first_publisher is not None
    assert (data_dir / "simulator" / "state.json").is_file(), "the simulator kept its state"
    again, _, sim_again = _run_dev(tmp_path, data_dir, "again.log")
    try:
        wait_until(lambda: "Then poll" in again.output(), 60, "dev to start again")
        assert f"publisher      {first_publisher.group(1)}" in again.output(), "the data was reused"
        first_purchase = json.loads(body)["transactionId"]
        kept = httpx.get(f"http://127.0.0.1:{sim_again}/sim/purchases/{first_purchase}")
        assert kept.status_code == 200, "the simulator still knows the purchases the service holds"
    finally:
        assert again.stop(signal.SIGINT) == 0, again.output()
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "the embedded database stopped"


def test_demo_runs_every_step(tmp_path: Path) -> None:
    import subprocess

    from tests.helpers.processes import BIN

    env = clean_env(COLUMNS="120")
    result = subprocess.run(
        [str(BIN), "demo"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "1. register",
        "2. poll",
        "3. webhooks",
        "4. entitlement",
        "5. Apple renews",
        "6. Apple refunds",
        "7. another purchase",
        "8. the service stops",
        "9. Apple refunds meanwhile: its notification does not arrive",
        "10. the service starts again",
        "11. recovered from Apple's history alone: access ends",
    ):
        assert step in result.stdout, step
    assert "The whole flow works." in result.stdout
    # Each step shows the requests it made, secrets shortened, and times as times.
    assert re.search(r"^POST /storekit2/purchases$", result.stdout, re.M)
    assert re.search(r"^  X-Publisher-Token: skp_\S{4}…\S{4}$", result.stdout, re.M)
    assert re.search(r"^GET /purchases/synchronizations/\S+", result.stdout, re.M)
    assert re.search(r"^POST /sim/purchases/\d+/refund$", result.stdout, re.M)
    assert not re.search(r"skp_[A-Za-z0-9_-]{20,}", result.stdout), "a whole token was shown"
    assert re.search(r"expiresAt +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+\)", result.stdout)


def test_a_second_dev_on_the_same_data_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, port, _ = _run_dev(tmp_path, data_dir, "first.log")
    try:
        wait_until(lambda: "Then poll" in first.output(), 60, "the first dev to start")
        second, _, _ = _run_dev(tmp_path, data_dir, "second.log")
        assert second.wait(30) == 1
        lines = second.output().strip().splitlines()
        assert len(lines) == 1, second.output()
        assert "another `storekit-sync dev`" in lines[0] and str(data_dir) in lines[0]
        assert f"pid {first.pid}" in lines[0]
        # the first one still serves, its demo publisher untouched
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        assert first.stop(signal.SIGINT) == 0, first.output()
    # the lock went with the process: the next dev starts
    again, _, _ = _run_dev(tmp_path, data_dir, "again.log")
    try:
        wait_until(lambda: "Then poll" in again.output(), 60, "dev to start again")
    finally:
        again.stop(signal.SIGINT)


@pytest.mark.parametrize("option", ["--port", "--simulator-port"])
def test_a_busy_port_is_one_line_naming_its_option(tmp_path: Path, option: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = {"--port": free_port(), "--simulator-port": free_port(), option: taken}
        args = ["dev"] + [word for pair in ports.items() for word in (pair[0], str(pair[1]))]
        dev = ServiceProcess(args, clean_env(DATA_DIR=str(tmp_path / "data")), tmp_path / "d.log")
        assert dev.wait(30) == 1
    assert dev.output().strip() == (
        f"storekit-sync: port {taken} is in use: choose another with {option} PORT"
    )


async def test_the_seed_step_sends_the_simulators_control_token(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """docker-compose.dev.yml's seed wires the demo publisher into a simulator whose /sim needs
    SIMULATOR_CONTROL_TOKEN."""
    from app.dev.dev import seed_publisher
    from app.simulator.server import SimulatorServer
    from tests.helpers.api import ADMIN_TOKEN

    for name in ("without", "with"):
        (tmp_path / name).mkdir()
    with SimulatorServer(control_token="sim-control-token-0123456789") as guarded:
        with pytest.raises(RuntimeError, match="/sim/apps: 401"):
            await seed_publisher(client, guarded.base_url, ADMIN_TOKEN, tmp_path / "without")
        state = await seed_publisher(
            client, guarded.base_url, ADMIN_TOKEN, tmp_path / "with", "sim-control-token-0123456789"
        )
    integration = await client.get(
        f"/admin/publishers/{state.publisher_id}/storekit2",
        headers={"X-Publisher-Token": state.publisher_token},
    )
    apps = [app["bundleId"] for app in integration.json()["apps"]]
    assert state.bundle_id in apps, "wired to the guarded simulator"


def test_a_webhook_is_printed_whole_however_narrow_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The header line, then the event's data as one line of JSON that nothing broke."""
    from rich.console import Console

    from app.dev import dev

    monkeypatch.setattr(dev, "console", Console(width=40, force_terminal=False))
    data = {"result": "SUBSCRIPTION_CREATED", "offerId": "S100000001_US", "accessGranted": True}
    event = {"broadcasterId": 1, "topic": "inappPurchaseSyncResult", "data": data}
    dev.show_webhook(event, {"webhook-id": "msg_0123456789abcdef0123456789abcdef"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("webhook inappPurchaseSyncResult (signature ok, webhook-id msg_")
    assert json.loads(lines[1]) == data
    assert len(lines) == 2
