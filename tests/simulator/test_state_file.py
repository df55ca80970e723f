"""``--state-file``: a simulator restarted on the same file continues where it left off."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.ExtendReasonCode import ExtendReasonCode
from appstoreserverlibrary.models.ExtendRenewalDateRequest import ExtendRenewalDateRequest
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from appstoreserverlibrary.models.SendAttemptResult import SendAttemptResult

from app.simulator import SimulatorState
from app.simulator.persistence import StateFileError
from app.simulator.server import SimulatorServer
from tests.helpers.processes import BIN, free_port
from tests.helpers.simulator import (
    MakeClient,
    Receiver,
    act,
    buy,
    closed_port_url,
    eventually,
    register_app,
    verified_transaction,
    wait_until,
)

HOUR_MS = 3_600_000


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def simulator_process(state_file: Path, log: Path) -> Iterator[str]:
    """``storekit-sync simulator --state-file`` as its own process, on a free port."""
    port = free_port()
    command = [str(BIN), "simulator", "--port", str(port), "--state-file", str(state_file)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=20)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _window() -> NotificationHistoryRequest:
    now = int(time.time() * 1000)
    return NotificationHistoryRequest(startDate=now - HOUR_MS, endDate=now + HOUR_MS)


async def test_a_restarted_process_continues_where_it_left_off(
    tmp_path: Path, apple: MakeClient
) -> None:
    state_file, log = tmp_path / "simulator.json", tmp_path / "simulator.log"
    with simulator_process(state_file, log) as first:
        async with httpx.AsyncClient(base_url=first) as control:
            app = await register_app(control, closed_port_url())
            bought = await buy(control, app, account="max")
            refunded = (await act(control, bought["transactionId"], "refund"))["notification"]
            root = (await control.get("/sim/root.der")).content
    with simulator_process(state_file, log) as second:
        async with httpx.AsyncClient(base_url=second) as control:
            assert (await control.get("/sim/root.der")).content == root
            later = await buy(control, app, account="max")
        client = apple(app, base_url=second)
        signed = (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
        decoded = verified_transaction(app.verifier(root), signed)
        assert decoded.revocationDate is not None
        history = (await client.get_notification_history(None, _window())).notificationHistory or []
        assert [i.signedPayload for i in history] == [refunded["signedPayload"]]
        assert [a.sendAttemptResult for a in history[0].sendAttempts or []] == [
            SendAttemptResult.SOCKET_ISSUE
        ]
    first_ids = (bought["transactionId"], bought["appTransactionId"])
    assert int(later["transactionId"]) > max(int(i) for i in first_ids)
    assert later["appTransactionId"] == bought["appTransactionId"]


async def test_everything_a_restart_needs_is_kept(
    tmp_path: Path, apple: MakeClient, receiver: Receiver
) -> None:
    path = tmp_path / "state.json"
    with SimulatorServer(state_file=path) as first:
        async with httpx.AsyncClient(base_url=first.base_url) as control:
            app = await register_app(control, receiver.url)
            bought = await buy(control, app, notify=True)
            renewed = await act(control, bought["transactionId"], "renew", failDelivery="TIMED_OUT")
        client = apple(app, base_url=first.base_url)
        request = ExtendRenewalDateRequest(
            extendByDays=3,
            extendReasonCode=ExtendReasonCode.OTHER,
            requestIdentifier="keep-me",
        )
        extended = await client.extend_subscription_renewal_date(bought["transactionId"], request)
        token = str((await client.request_test_notification()).testNotificationToken)
        await eventually(lambda: _sent_in_background(client))
        root = first.root_der
    with SimulatorServer(state_file=path) as second:
        assert second.root_der == root
        client = apple(app, base_url=second.base_url)
        assert (
            await client.extend_subscription_renewal_date(bought["transactionId"], request)
            == extended
        )
        status = await client.get_test_notification_status(token)
        assert [a.sendAttemptResult for a in status.sendAttempts or []] == [
            SendAttemptResult.SUCCESS
        ]
        history = (await client.get_notification_history(None, _window())).notificationHistory or []
        kinds = [
            app.verifier(root)
            .verify_and_decode_notification(str(i.signedPayload))
            .rawNotificationType
            for i in history
        ]
        assert kinds == ["SUBSCRIBED", "DID_RENEW", "RENEWAL_EXTENDED", "TEST"]
        signed = (await client.get_transaction_info(renewed["transactionId"])).signedTransactionInfo
        assert (
            verified_transaction(app.verifier(root), signed).expiresDate == extended.effectiveDate
        )


async def _sent_in_background(client: AsyncAppStoreServerAPIClient) -> bool | None:
    """Whether the extension's and the test's notifications have been attempted, per Apple's API."""
    history = (await client.get_notification_history(None, _window())).notificationHistory or []
    attempted = [i for i in history if i.sendAttempts]
    return True if len(attempted) == 4 else None


def test_the_file_is_written_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SimulatorState(state_file=path)
    assert json.loads(path.read_text())["version"] == 1
    assert path.stat().st_mode & 0o077 == 0
    state.persist()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_given_chain_wins_over_the_saved_one(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    saved = SimulatorState(state_file=path).chain
    other = SimulatorState(state_file=tmp_path / "other.json").chain
    assert SimulatorState(other, state_file=path).chain.root_der == other.root_der
    assert SimulatorState(state_file=path).chain.root_der == other.root_der != saved.root_der


def test_ids_never_go_back_even_with_a_lower_first_id(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = SimulatorState(state_file=path, first_transaction_id=5_000_000_000_000_000)
    taken = int(first.next_transaction_id())
    first.persist()
    again = SimulatorState(state_file=path, first_transaction_id=2_000_000_000_000_000)
    assert int(again.next_transaction_id()) == taken + 1


@pytest.mark.parametrize("content", ["not json", "[]", '{"version": 99}'])
def test_a_file_that_is_not_a_state_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateFileError):
        SimulatorState(state_file=path)


def test_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("not json")
    command = [str(BIN), "simulator", "--port", str(free_port()), "--state-file", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().startswith("storekit-sync simulator:")
    assert "Traceback" not in result.stderr
