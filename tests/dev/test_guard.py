"""The listening socket `dev` claims before it serves."""

from __future__ import annotations

import asyncio
import socket

from app.dev.guard import claim_port


async def test_connections_accepted_on_the_claimed_port_send_without_delay() -> None:
    """Each answer leaves at once (TCP_NODELAY), so a keep-alive client never waits on Nagle's
    algorithm for the body of an answer whose headers went first."""
    listening = claim_port("127.0.0.1", 0, "--port")
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        nodelay.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listening)
    try:
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(nodelay, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
