"""The loopback server the simulator (and the tests' own servers) run under."""

from __future__ import annotations

import socket

from starlette.applications import Starlette

from app.simulator.server import BackgroundServer


def test_the_listening_socket_is_tcp_by_name() -> None:
    """asyncio sets TCP_NODELAY on the connections a server accepts only when its listening
    socket names IPPROTO_TCP; a socket made as `socket.socket(AF_INET, SOCK_STREAM)` says 0, and
    then an answer's body on a keep-alive connection waited about 40 ms behind its headers
    (Nagle's algorithm and the client's delayed acknowledgement)."""
    server = BackgroundServer(Starlette())
    try:
        assert server._socket.proto == socket.IPPROTO_TCP
    finally:
        server._socket.close()
