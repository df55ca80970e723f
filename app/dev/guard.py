"""What `dev` claims before it starts anything: its DATA_DIR, alone, and its two ports.

A second `dev` on the same DATA_DIR would take over the first one's demo publisher (its webhook
endpoint, its simulator) and break the first one's printed curl; a busy port would otherwise end
in a traceback. Both are refused with one line that says what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO


class DevRefused(Exception):
    """`dev` cannot start; the message is the one line to print."""


def hold_data_dir(data_dir: Path) -> IO[str]:
    """Lock DATA_DIR/dev.lock for as long as the returned file stays open (the process's life).

    An advisory lock of the operating system: it goes with the process, however it ends, so a
    killed `dev` never leaves a stale lock behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev.lock"
    held = path.open("a+")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read().strip() or "?"
        held.close()
        raise DevRefused(
            f"another `storekit-sync dev` (pid {holder}) is using {data_dir}: stop it, "
            "or give this one its own DATA_DIR"
        ) from None
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def claim_port(host: str, port: int, option: str) -> socket.socket:
    """A socket bound to host:port, for the server to serve on; a busy port is one line. Made with
    its protocol named: asyncio sets TCP_NODELAY on the connections it accepts only when the
    listening socket says IPPROTO_TCP, and without it a keep-alive client waited about 40 ms for
    each answer (Nagle's algorithm holding the body behind the headers' unacknowledged segment)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DevRefused(f"port {port} is in use: choose another with {option} PORT") from None
        raise DevRefused(f"cannot listen on {host}:{port} ({exc.strerror}): see {option}") from None
    return sock
