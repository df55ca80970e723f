"""Run the service as a real process, the way a user does, and wait on conditions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "storekit-sync"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def clean_env(**values: str) -> dict[str, str]:
    """The environment without the test's own database settings, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}
    env.update(values)
    return env


def is_ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class ServiceProcess:
    """`storekit-sync <args>` as a subprocess, with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [str(BIN), *args], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> int:
        """Its exit code, once it has ended by itself."""
        code = self.process.wait(timeout)
        self._out.close()
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._out.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")
