"""Running the simulator: ``serve`` (blocking) and ``SimulatorServer`` (a background thread, for tests)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from app.simulator.application import create_app
from app.simulator.certs import load_or_create_chain
from app.simulator.faults import ConnectionDropped
from app.simulator.persistence import StateFileError
from app.simulator.ratelimit import RateLimits
from app.simulator.state import SimulatorState

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class _HideDroppedConnections(logging.Filter):
    """Connections dropped on purpose (fault ``drop``) are not errors worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def quiet_dropped_connections() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedConnections) for f in logger.filters):
        logger.addFilter(_HideDroppedConnections())


def serve(
    host: str = "127.0.0.1",
    port: int = 9000,
    cert_dir: Path | None = None,
    notify_url: str | None = None,
    *,
    state_file: Path | None = None,
    control_token: str | None = None,
    rate_limits: RateLimits | None = None,
) -> None:
    """Serve the simulator until interrupted. ``cert_dir`` keeps the chain across restarts
    (trust ``cert_dir/root.der``); ``notify_url`` is where apps without their own URL are notified;
    ``state_file`` keeps everything else (and the chain, without ``cert_dir``) across restarts;
    ``control_token`` guards the control API; ``rate_limits``: Apple's by default.
    """
    chain = load_or_create_chain(cert_dir) if cert_dir is not None else None
    try:
        state = SimulatorState(
            chain,
            default_notification_url=notify_url,
            state_file=state_file,
            rate_limits=rate_limits,
        )
    except StateFileError as error:
        raise SystemExit(f"storekit-sync simulator: {error}") from error
    quiet_dropped_connections()
    app = create_app(state, control_token)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


def rate_limits_of(window: float, budget: int | None, off: bool) -> RateLimits:
    """The command line's ``--rate-window``, ``--rate-budget`` and ``--no-rate-limits``."""
    return RateLimits(window_seconds=window, budget=budget, enabled=not off)


class BackgroundServer:
    """Any ASGI app under uvicorn in a daemon thread, on a loopback port (0: any free one)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        # IPPROTO_TCP by name: asyncio sets TCP_NODELAY on accepted connections only then, and
        # without it each answer on a keep-alive connection could wait ~40 ms (Nagle's algorithm).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.base_url} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class SimulatorServer(BackgroundServer):
    """The simulator in a background thread: ``with SimulatorServer() as sim: sim.base_url``."""

    def __init__(
        self,
        state: SimulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_file: Path | None = None,
        control_token: str | None = None,
    ) -> None:
        """``state`` or, if none, a new state (kept in ``state_file``, if given); with
        ``control_token``, the control API needs ``Authorization: Bearer <token>``."""
        self.state = state if state is not None else SimulatorState(state_file=state_file)
        quiet_dropped_connections()
        super().__init__(create_app(self.state, control_token), host, port)

    @property
    def root_der(self) -> bytes:
        return self.state.chain.root_der
