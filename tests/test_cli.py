"""The command line as a user runs it: configuration errors, serve, the embedded PostgreSQL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.helpers.api import ADMIN, ADMIN_TOKEN
from tests.helpers.processes import BIN, ServiceProcess, clean_env, free_port, is_ready, wait_until


def _postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_bad_setting_stops_with_one_line(tmp_path: Path) -> None:
    env = clean_env(DATA_DIR=str(tmp_path), WEBHOOK_TIMEOUT="soon")
    result = subprocess.run(
        [str(BIN), "migrate"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("storekit-sync: invalid WEBHOOK_TIMEOUT:")
    assert "Traceback" not in result.stderr


def _serve(tmp_path: Path, data_dir: Path, name: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    env = clean_env(DATA_DIR=str(data_dir), ADMIN_TOKEN=ADMIN_TOKEN, LOG_FORMAT="json")
    service = ServiceProcess(["serve", "--port", str(port), "--no-worker"], env, tmp_path / name)
    return service, f"http://127.0.0.1:{port}"


def test_fresh_data_dir_serves_and_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service, url = _serve(tmp_path, data_dir, "first.log")
    try:
        wait_until(lambda: is_ready(url), 30, "readyz on a fresh DATA_DIR")
        made = httpx.post(f"{url}/admin/publishers", json={"name": "Kept"}, headers=ADMIN)
        assert made.status_code == 201
    finally:
        assert service.stop() == 0, service.output()
    assert not _postmaster_running(data_dir), "the embedded PostgreSQL outlived the service"

    service, url = _serve(tmp_path, data_dir, "second.log")
    try:
        wait_until(lambda: is_ready(url), 30, "readyz after a restart")
        token = made.json()["publisherToken"]
        pid = made.json()["publisherId"]
        offers = httpx.get(
            f"{url}/admin/publishers/{pid}/offers", headers={"X-Publisher-Token": token}
        )
        assert offers.status_code == 200, "the publisher did not survive the restart"
    finally:
        service.stop()
    assert not _postmaster_running(data_dir)


def test_processes_share_one_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, first_url = _serve(tmp_path, data_dir, "a.log")
    second, second_url = _serve(tmp_path, data_dir, "b.log")
    try:
        wait_until(lambda: is_ready(first_url) and is_ready(second_url), 30, "both ready")
        made = httpx.post(f"{first_url}/admin/publishers", json={"name": "Shared"}, headers=ADMIN)
        headers = {"X-Publisher-Token": made.json()["publisherToken"]}
        offers_url = f"/admin/publishers/{made.json()['publisherId']}/offers"
        assert first.stop() == 0
        assert _postmaster_running(data_dir), "stopped while another process still used it"
        assert httpx.get(second_url + offers_url, headers=headers).status_code == 200
    finally:
        first.stop()
        second.stop()
    assert not _postmaster_running(data_dir)


def test_every_command_and_option_has_help() -> None:
    """`storekit-sync COMMAND --help` explains every option, and the top-level help each command."""
    import argparse

    from app.cli import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helped = {action.dest for action in commands._choices_actions if action.help}
    assert helped == set(commands.choices), set(commands.choices) - helped
    for name, command in commands.choices.items():
        assert command.description, f"{name} has no description"
        for action in command._actions:
            assert action.help, f"storekit-sync {name} {'/'.join(action.option_strings)}"
    result = subprocess.run(
        [str(BIN), "dev", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "--simulator-port" in result.stdout
