"""Child processes: started in their own session, their output in a log file, always stopped.

`running()` is a context manager: the process is stopped (SIGTERM, then SIGKILL) when the block
ends, whatever ends it. On Linux a child also gets SIGTERM if the harness itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.rawhttp import Connection, HttpError

STOP_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the harness goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout)


def spawn(name: str, args: list[str], env: Mapping[str, str], cwd: Path, log_dir: Path) -> Proc:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the harness only; it stops them in order
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return Proc(name, popen, log)


@contextlib.contextmanager
def running(
    name: str, args: list[str], env: Mapping[str, str], cwd: Path, log_dir: Path
) -> Iterator[Proc]:
    proc = spawn(name, args, env, cwd, log_dir)
    try:
        yield proc
    finally:
        proc.stop()


def _answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_http(proc: Proc, port: int, path: str, timeout: float) -> None:
    """Wait until GET `path` answers 200; fail with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        if _answers(port, path):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:g}s:\n{proc.tail()}")


async def wait_ready(proc: Proc, port: int, path: str, patience: float) -> None:
    """`wait_http` without blocking the event loop (other set-up runs meanwhile)."""
    deadline = time.monotonic() + patience
    connection = Connection(port, timeout=2.0)
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            with contextlib.suppress(OSError, HttpError, asyncio.IncompleteReadError):
                if (await connection.request("GET", path)).status == 200:
                    return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    raise RuntimeError(f"{proc.name} not ready after {patience:g}s:\n{proc.tail()}")
