"""Helpers for the simulator's tests: registered apps, Apple's client and verifier, a receiver."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from appstoreserverlibrary.api_client import APIException, AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import JWSRenewalInfoDecodedPayload
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import JWSTransactionDecodedPayload
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JsonDict = dict[str, Any]
T = TypeVar("T")
DEADLINE_SECONDS = 5.0


@dataclass(frozen=True)
class SimApp:
    """An app registered with the simulator, with the key pair the simulator made for it."""

    bundle_id: str
    app_apple_id: int
    issuer_id: str
    key_id: str
    private_key: str

    def verifier(
        self, root_der: bytes, environment: Environment = Environment.SANDBOX
    ) -> SignedDataVerifier:
        """Apple's verifier in strict mode, trusting only ``root_der``."""
        return SignedDataVerifier(
            root_certificates=[root_der],
            enable_online_checks=False,
            environment=environment,
            bundle_id=self.bundle_id,
            app_apple_id=self.app_apple_id,
        )


def unique_bundle_id() -> str:
    return f"com.example.sim{uuid.uuid4().hex[:12]}"


async def register_app(control: httpx.AsyncClient, notification_url: str | None) -> SimApp:
    body = {"bundleId": unique_bundle_id(), "notificationUrl": notification_url}
    response = await control.post("/sim/apps", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return SimApp(
        bundle_id=data["bundleId"],
        app_apple_id=data["appAppleId"],
        issuer_id=data["issuerId"],
        key_id=data["keyId"],
        private_key=data["privateKey"],
    )


async def buy(
    control: httpx.AsyncClient, app: SimApp, product_type: str = "auto-renewable", **fields: Any
) -> JsonDict:
    body = {"bundleId": app.bundle_id, "productId": f"{app.bundle_id}.{product_type}"}
    response = await control.post("/sim/purchases", json=body | {"type": product_type} | fields)
    assert response.status_code == 201, response.text
    data: JsonDict = response.json()
    return data


async def act(
    control: httpx.AsyncClient, transaction_id: str, action: str, **body: Any
) -> JsonDict:
    response = await control.post(f"/sim/purchases/{transaction_id}/{action}", json=body)
    assert response.status_code == 200, response.text
    data: JsonDict = response.json()
    return data


async def add_fault(control: httpx.AsyncClient, kind: str, **fields: Any) -> str:
    response = await control.post("/sim/faults", json={"kind": kind} | fields)
    assert response.status_code == 201, response.text
    return str(response.json()["faultId"])


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_SECONDS) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)


class Receiver:
    """A notification endpoint: keeps every JSON body posted to ``/notifications``."""

    def __init__(self) -> None:
        self.bodies: list[JsonDict] = []
        self.status_code = 200
        self.url = ""

    def asgi(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.bodies.append(await request.json())
            return Response(status_code=self.status_code)

        return Starlette(routes=[Route("/notifications", receive, methods=["POST"])])

    def count(self, signed_payload: str) -> int:
        return sum(1 for body in self.bodies if body.get("signedPayload") == signed_payload)

    def wait_for(self, signed_payload: str, times: int = 1) -> None:
        wait_until(lambda: self.count(signed_payload) >= times)


def verified_transaction(
    verifier: SignedDataVerifier, signed: str | None
) -> JWSTransactionDecodedPayload:
    assert signed is not None
    return verifier.verify_and_decode_signed_transaction(signed)


def verified_renewal(
    verifier: SignedDataVerifier, signed: str | None
) -> JWSRenewalInfoDecodedPayload:
    assert signed is not None
    return verifier.verify_and_decode_renewal_info(signed)


def bearer(client: AsyncAppStoreServerAPIClient) -> dict[str, str]:
    """The headers Apple's client would send, for calls its methods cannot make (bad input)."""
    return {"Authorization": f"Bearer {client._generate_token()}"}


async def apple_error(call: Awaitable[object]) -> tuple[int, int | None]:
    """The HTTP status and Apple error code that Apple's client raised for ``call``."""
    try:
        await call
    except APIException as error:
        return error.http_status_code, error.raw_api_error
    raise AssertionError("the call succeeded")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = DEADLINE_SECONDS
) -> T:
    """Await ``probe`` until it gives something other than ``None``, failing after ``within`` s."""
    deadline = time.monotonic() + within
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)
    return found


def closed_port_url() -> str:
    """A loopback URL nothing listens on: posting to it is refused, as to a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/notifications"


MakeClient = Callable[..., AsyncAppStoreServerAPIClient]
