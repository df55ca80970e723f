"""docs/api.md §5: every webhook connection, http or https, goes only to an address checked for it, and
TLS is verified against the URL's name; `lastError` says what a publisher can act on, never what a
port scan would want to know."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.config import Settings
from app.webhooks import targets
from app.webhooks.sending import Answer, Message, new_http_client, send
from tests.helpers.api import make_settings

HOST = "hooks.example.test"
PUBLIC = ipaddress.ip_address("93.184.216.34")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
PRIVATE_REFUSAL = "not sent: the URL resolves to a private, loopback or link-local address"


def _settings(tmp_path: Path, *, allow_private: bool) -> Settings:
    return make_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path,
        webhook_allow_private_networks=allow_private,
        webhook_timeout=5.0,
    )


def _message(url: str) -> Message:
    return Message(url, "msg_pinning", '{"topic": "test"}', "a-webhook-secret-of-32-characters")


async def _send(client: httpx.AsyncClient, url: str, settings: Settings) -> Answer:
    return await send(client, _message(url), settings, datetime.now(UTC))


# --- a local TLS server with certificates from a test CA --------------------------------------


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: str, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


@pytest.fixture(scope="module")
def authority() -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder("storekit-sync test CA", "storekit-sync test CA", key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def _server_context(
    authority: Authority, name: str, directory: Path, seen: list[str]
) -> ssl.SSLContext:
    """A server context presenting a certificate for `name`; records each SNI it is asked for."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder(name, "storekit-sync test CA", key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    chain, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    chain.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM) + authority.pem().encode()
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    context.sni_callback = lambda _socket, server_name, _context: seen.append(str(server_name))
    return context


@dataclass
class Listener:
    """A loopback server; `requests` holds the head of each request, `received` raw bytes."""

    port: int = 0
    server_names: list[str] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


async def _answer_http(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        listener.requests.append(head)
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    finally:
        writer.close()


async def _record_bytes(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Whatever arrives (a TLS ClientHello, a request), then the connection is closed."""
    try:
        listener.received.append(await reader.read(65536))
    finally:
        writer.close()


async def _close_at_once(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    listener.received.append(b"")
    writer.close()


Handler = Callable[[Listener, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _listening(
    handler: Handler, tls: ssl.SSLContext | None = None, seen: list[str] | None = None
) -> AsyncIterator[Listener]:
    listener = Listener(server_names=seen if seen is not None else [])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handler(listener, reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


class Dns:
    """A resolver that answers from a table; each name's answers are used in turn, the last one
    for every later lookup."""

    def __init__(self, answers: dict[str, list[targets.IPAddress]] | None = None) -> None:
        self.answers = {name: list(seq) for name, seq in (answers or {}).items()}
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[targets.IPAddress]:
        self.asked.append(host)
        if host not in self.answers:
            raise targets.UnresolvableHost("has a host that cannot be resolved")
        queue = self.answers[host]
        return [queue.pop(0) if len(queue) > 1 else queue[0]]


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tls"
    directory.mkdir()
    return directory


# --- rebinding ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_name_that_rebinds_to_loopback_never_gets_a_byte_there(
    tmp_path: Path, scheme: str
) -> None:
    """The name is public when checked, loopback when connected to (the system's own DNS says
    `localhost` is 127.0.0.1): a real listener there must see nothing."""
    dns = Dns({"localhost": [PUBLIC, LOOPBACK]})
    settings = _settings(tmp_path, allow_private=False)
    async with _listening(_record_bytes) as listener:
        client = new_http_client(settings, resolver=dns.resolve)
        try:
            answer = await _send(client, f"{scheme}://localhost:{listener.port}/hook", settings)
        finally:
            await client.aclose()
    assert listener.received == []
    assert answer.status_code is None and answer.error == PRIVATE_REFUSAL


async def test_every_new_connection_is_checked_again(
    tmp_path: Path, authority: Authority, tls_dir: Path
) -> None:
    """A second connection to the same name (the first is still in use) looks the name up again:
    no connection reuses an earlier check."""
    seen: list[str] = []
    tls = _server_context(authority, HOST, tls_dir, seen)
    settings = _settings(tmp_path, allow_private=True)
    async with _listening(_answer_http, tls, seen) as listener:
        dns = Dns({HOST: [LOOPBACK]})
        client = new_http_client(settings, resolver=dns.resolve, verify=authority.client_context())
        try:
            answers = await asyncio.gather(
                *(_send(client, f"https://{HOST}:{listener.port}/h", settings) for _ in range(2))
            )
        finally:
            await client.aclose()
    assert [a.status_code for a in answers] == [200, 200]
    assert dns.asked == [HOST, HOST]


# --- TLS to the checked address, under the name -----------------------------------------------


async def test_https_goes_to_the_checked_address_with_the_name_as_sni_host_and_certificate(
    tmp_path: Path, authority: Authority, tls_dir: Path
) -> None:
    seen: list[str] = []
    tls = _server_context(authority, HOST, tls_dir, seen)
    settings = _settings(tmp_path, allow_private=True)
    async with _listening(_answer_http, tls, seen) as listener:
        dns = Dns({HOST: [LOOPBACK]})
        client = new_http_client(settings, resolver=dns.resolve, verify=authority.client_context())
        try:
            answer = await _send(client, f"https://{HOST}:{listener.port}/hooks/1", settings)
        finally:
            await client.aclose()
    assert (answer.status_code, answer.error) == (200, None)
    assert listener.server_names == [HOST]
    (head,) = listener.requests
    assert head.startswith(b"POST /hooks/1 HTTP/1.1\r\n")
    assert f"\r\nhost: {HOST}:{listener.port}\r\n".encode() in head.lower()
    assert b"\r\nwebhook-id: msg_pinning\r\n" in head.lower()


async def test_a_certificate_for_another_name_is_refused(
    tmp_path: Path, authority: Authority, tls_dir: Path
) -> None:
    seen: list[str] = []
    tls = _server_context(authority, "other.example.test", tls_dir, seen)
    settings = _settings(tmp_path, allow_private=True)
    async with _listening(_answer_http, tls, seen) as listener:
        dns = Dns({HOST: [LOOPBACK]})
        client = new_http_client(settings, resolver=dns.resolve, verify=authority.client_context())
        try:
            answer = await _send(client, f"https://{HOST}:{listener.port}/hooks/1", settings)
        finally:
            await client.aclose()
    assert listener.requests == []
    assert answer.status_code is None
    assert answer.error == "TLS certificate not valid for the host"


async def test_a_name_resolving_to_a_private_address_is_refused(tmp_path: Path) -> None:
    dns = Dns({HOST: [ipaddress.ip_address("10.1.2.3")]})
    settings = _settings(tmp_path, allow_private=False)
    client = new_http_client(settings, resolver=dns.resolve)
    try:
        answer = await _send(client, f"https://{HOST}/hook", settings)
    finally:
        await client.aclose()
    assert answer.error == PRIVATE_REFUSAL


# --- lastError: categories, no oracle ----------------------------------------------------------


async def _error_for(tmp_path: Path, handler: Handler, scheme: str = "http") -> tuple[Answer, int]:
    settings = _settings(tmp_path, allow_private=True)
    dns = Dns({HOST: [LOOPBACK]})
    async with _listening(handler) as listener:
        client = new_http_client(settings, resolver=dns.resolve)
        try:
            return await _send(
                client, f"{scheme}://{HOST}:{listener.port}/h", settings
            ), listener.port
        finally:
            await client.aclose()


def _says_nothing_more(error: str | None, port: int) -> None:
    assert error is not None
    for leak in ("127.0.0.1", str(port), "Errno", "Error", "[", HOST):
        assert leak not in error, (leak, error)


async def test_a_refused_connection_is_named_as_such(tmp_path: Path) -> None:
    async with _listening(_close_at_once) as closed:
        port = closed.port  # free once the server is closed
    settings = _settings(tmp_path, allow_private=True)
    dns = Dns({HOST: [LOOPBACK]})
    client = new_http_client(settings, resolver=dns.resolve)
    try:
        answer = await _send(client, f"http://{HOST}:{port}/h", settings)
    finally:
        await client.aclose()
    assert answer.error == "connection refused"
    _says_nothing_more(answer.error, port)


async def test_a_connection_closed_without_an_answer(tmp_path: Path) -> None:
    answer, port = await _error_for(tmp_path, _close_at_once)
    assert answer.error == "connection closed without an answer"
    _says_nothing_more(answer.error, port)


async def _plain_http(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers whatever arrives (a TLS ClientHello here) in plain HTTP."""
    listener.received.append(await reader.read(65536))
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_a_server_that_speaks_no_tls_to_an_https_url(tmp_path: Path) -> None:
    answer, port = await _error_for(tmp_path, _plain_http, scheme="https")
    assert answer.error == "TLS handshake failed"
    _says_nothing_more(answer.error, port)


async def test_an_unresolvable_host(tmp_path: Path) -> None:
    settings = _settings(tmp_path, allow_private=False)
    client = new_http_client(settings, resolver=Dns().resolve)
    try:
        answer = await _send(client, "https://nowhere.example.test/h", settings)
    finally:
        await client.aclose()
    assert answer.error == "could not resolve the host"


async def test_an_unexpected_error_is_a_failed_attempt_that_says_nothing_more(
    tmp_path: Path,
) -> None:
    async def broken(host: str, port: int) -> list[targets.IPAddress]:
        raise RuntimeError(f"the lookup of {host}:{port} broke [Errno 99]")

    settings = _settings(tmp_path, allow_private=False)
    client = new_http_client(settings, resolver=broken)
    try:
        answer = await _send(client, f"https://{HOST}:8443/h", settings)
    finally:
        await client.aclose()
    assert (answer.status_code, answer.error) == (None, "connection failed")
    _says_nothing_more(answer.error, 8443)


async def test_an_http_status_is_the_error(tmp_path: Path) -> None:
    async def unavailable(
        listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    answer, _ = await _error_for(tmp_path, unavailable)
    assert (answer.status_code, answer.error) == (503, "HTTP 503")
