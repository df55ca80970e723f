"""`storekit-sync dev`: everything on one machine, wired together, for a newcomer's first minutes.

The embedded PostgreSQL, the App Store simulator, a local webhook receiver that prints what it
gets (signature checked), the API and its worker; a demo publisher wired to the simulator with two
apps (an iPhone app and an Apple TV app, one In-App Purchase key for both), two offers, three
customers and every topic subscribed. Running it again reuses `DATA_DIR`: the database, and the
simulator's state (`DATA_DIR/simulator/state.json`: its apps, purchases and notifications), so the
purchases the service holds are still Apple's after a restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.panel import Panel
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings, load_settings
from app.dev.guard import claim_port
from app.enums import Topic
from app.simulator.certs import load_or_create_chain
from app.simulator.server import BackgroundServer, SimulatorServer
from app.simulator.state import SimulatorState

console = Console()
MONTHLY_OFFER, LIFETIME_OFFER = "S100000001_US", "P100000002_US"
OFFERS = {MONTHLY_OFFER: ("Pro monthly", "pro.monthly"), LIFETIME_OFFER: ("Lifetime", "lifetime")}
TV_BUNDLE_ID = "com.demo.tv.appletv"
TV_PRODUCTS = {MONTHLY_OFFER: "pro.monthly"}  # the Apple TV app sells the monthly offer too


@dataclass
class DevState:
    """What dev keeps in DATA_DIR/dev.json between runs."""

    publisher_id: int
    publisher_token: str
    customers: list[int]
    bundle_id: str
    key_id: str
    issuer_id: str
    app_apple_id: int
    private_key: str
    webhook_secret: str
    # The second app (added after the first release of dev: a dev.json without it gets it).
    tv_bundle_id: str = TV_BUNDLE_ID
    tv_app_apple_id: int = 1_234_567_891

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / "dev.json"

    @classmethod
    def load(cls, data_dir: Path) -> DevState | None:
        path = cls.path(data_dir)
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def save(self, data_dir: Path) -> None:
        path = self.path(data_dir)
        path.write_text(json.dumps(self.__dict__, indent=2))
        path.chmod(0o600)


def _whsec(secret: str) -> str:
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def show_webhook(event: dict[str, Any], headers: dict[str, str]) -> None:
    """One delivery as two lines that a terminal never breaks inside the JSON: a header (its
    topic, that its signature checked, its webhook-id), then its `data` as one line of JSON."""
    console.print(
        f"[green]webhook[/green] {event.get('topic')} (signature ok,"
        f" webhook-id {headers.get('webhook-id', '?')})",
        soft_wrap=True,
    )
    print("  " + json.dumps(event.get("data", {}), ensure_ascii=False), flush=True)


def receiver_app(secret_holder: dict[str, str], out: list[dict[str, Any]]) -> Starlette:
    """Prints each delivery it gets, after checking its Standard Webhooks signature."""

    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            Webhook(_whsec(secret_holder["secret"])).verify(body, headers)
        except Exception:
            console.print("[red]webhook with a bad signature refused[/red]")
            return Response(status_code=400)
        event = json.loads(body)
        out.append(event)
        show_webhook(event, headers)
        return Response(status_code=204)

    return Starlette(routes=[Route("/hooks", receive, methods=["POST"])])


def _admin_token(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    path = data_dir / "admin-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class DevWorld:
    settings: Settings
    simulator: SimulatorServer
    receiver: BackgroundServer
    secret_holder: dict[str, str]
    deliveries: list[dict[str, Any]]

    def stop(self) -> None:
        self.receiver.stop()
        self.simulator.stop()


def simulator_state_file(data_dir: Path) -> Path:
    return data_dir / "simulator" / "state.json"


def start_world(sim_port: int = 9000, receiver_port: int = 0) -> DevWorld:
    """The simulator, the receiver, and settings for a service wired to both."""
    base = load_settings()
    base.data_dir.mkdir(parents=True, exist_ok=True)
    cert_dir = base.data_dir / "simulator"
    # The simulator keeps its state in DATA_DIR, as the database does. Its ids start past any a
    # run of an earlier release (which kept no state) could have given, so none is reused.
    first_id = 2_000_000_000_000_000 + int(time.time() * 1000) * 100
    state = SimulatorState(
        load_or_create_chain(cert_dir),
        first_transaction_id=first_id,
        state_file=simulator_state_file(base.data_dir),
    )
    try:
        simulator = SimulatorServer(state, port=sim_port)
    except OSError:  # taken since dev checked it
        claim_port("127.0.0.1", sim_port, "--simulator-port").close()
        raise
    holder: dict[str, str] = {"secret": ""}
    deliveries: list[dict[str, Any]] = []
    receiver = BackgroundServer(receiver_app(holder, deliveries), port=receiver_port)
    simulator.start()
    receiver.start()
    settings = base.model_copy(
        update={
            "admin_token": _admin_token(base.admin_token, base.data_dir),
            "apple_root_certificates": (cert_dir / "root.der",),
            "apple_api_base_url": simulator.base_url,
            "apple_online_checks": False,
            "webhook_allow_private_networks": True,
        }
    )
    return DevWorld(settings, simulator, receiver, holder, deliveries)


def _p256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def _ok(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        raise RuntimeError(
            f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
        )
    return answer.json() if answer.content else None


async def _new_state(api: httpx.AsyncClient, admin: dict[str, str]) -> DevState:
    publisher = await _ok(
        await api.post("/admin/publishers", json={"name": "Demo TV"}, headers=admin)
    )
    pid = publisher["publisherId"]
    customers = []
    for n in range(1, 4):
        body = {"email": f"viewer{n}@demo.example", "externalId": f"demo-{n}"}
        made = await _ok(
            await api.post(f"/admin/publishers/{pid}/customers", json=body, headers=admin)
        )
        customers.append(int(made["customerId"]))
    key_id = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10))
    return DevState(
        publisher_id=pid,
        publisher_token=publisher["publisherToken"],
        customers=customers,
        bundle_id="com.demo.tv",
        key_id=key_id,
        issuer_id=str(uuid.uuid4()),
        app_apple_id=1_234_567_890,
        private_key=_p256_pem(),
        webhook_secret=secrets.token_urlsafe(24),
    )


async def _still_there(api: httpx.AsyncClient, state: DevState) -> bool:
    answer = await api.get(
        f"/admin/publishers/{state.publisher_id}/offers",
        headers={"X-Publisher-Token": state.publisher_token},
    )
    return answer.status_code == 200


async def _wire_app(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, state: DevState, bundle_id: str, app_id: int
) -> None:
    """One app in the simulator (notifying the API) and in the integration, with dev's key."""
    pid, headers = state.publisher_id, {"X-Publisher-Token": state.publisher_token}
    api_url = str(api.base_url).rstrip("/")
    app = {
        "bundleId": bundle_id,
        "appAppleId": app_id,
        "issuerId": state.issuer_id,
        "keyId": state.key_id,
        "publicKey": _public_pem(state.private_key),
        "notificationUrl": f"{api_url}/apple/notifications/{pid}",
    }
    await _ok(await sim.post("/sim/apps", json=app))
    integration = {k: app[k] for k in ("appAppleId", "issuerId", "keyId")}
    integration |= {"privateKey": state.private_key, "environment": "Sandbox"}
    url = f"/admin/publishers/{pid}/storekit2/apps/{bundle_id}"
    await _ok(await api.put(url, json=integration, headers=headers))


async def _wire(api: httpx.AsyncClient, sim: httpx.AsyncClient, state: DevState) -> None:
    """Idempotent: the two apps, the offers (the Apple TV app's product beside the first's)."""
    pid, headers = state.publisher_id, {"X-Publisher-Token": state.publisher_token}
    await _wire_app(api, sim, state, state.bundle_id, state.app_apple_id)
    await _wire_app(api, sim, state, state.tv_bundle_id, state.tv_app_apple_id)
    for offer_id, (title, product) in OFFERS.items():
        products = [f"{state.bundle_id}.{product}"]
        if offer_id in TV_PRODUCTS:
            products.append(f"{state.tv_bundle_id}.{TV_PRODUCTS[offer_id]}")
        body = {"title": title, "productIds": products}
        url = f"/admin/publishers/{pid}/offers/{offer_id}"
        await _ok(await api.put(url, json=body, headers=headers))


async def subscribe_all(api: httpx.AsyncClient, state: DevState, receiver_url: str) -> None:
    """Every topic to one endpoint, signed with the secret dev keeps."""
    headers = {"X-Publisher-Token": state.publisher_token}
    options = {"hashAlg": "SHA256", "sharedSecret": state.webhook_secret}
    endpoint = {"url": receiver_url, "verification": {"name": "HMAC", "options": options}}
    for topic in Topic:
        url = f"/3.1/webhook_subscriptions/{topic}"
        await _ok(await api.put(url, json=[endpoint], headers=headers))


async def seed_publisher(
    api: httpx.AsyncClient,
    sim_url: str,
    admin_token: str,
    data_dir: Path,
    sim_token: str | None = None,
) -> DevState:
    """The demo publisher: made on the first run, reused and re-wired on the next ones.
    `sim_token`: the simulator's control token, when its `/sim` needs one."""
    state = DevState.load(data_dir)
    if state is None or not await _still_there(api, state):
        state = await _new_state(api, {"X-Admin-Token": admin_token})
        state.save(data_dir)
    headers = {"Authorization": f"Bearer {sim_token}"} if sim_token else None
    async with httpx.AsyncClient(base_url=sim_url, timeout=10, headers=headers) as sim:
        await _wire(api, sim, state)
    return state


async def seed(api: httpx.AsyncClient, world: DevWorld) -> DevState:
    settings = world.settings
    sim_url = world.simulator.base_url
    state = await seed_publisher(api, sim_url, str(settings.admin_token), settings.data_dir)
    world.secret_holder["secret"] = state.webhook_secret
    await subscribe_all(api, state, f"{world.receiver.base_url}/hooks")
    return state


async def buy(
    world: DevWorld, state: DevState, product: str = "pro.monthly", bundle_id: str | None = None
) -> dict[str, Any]:
    """A purchase in the simulator, in the first app or in `bundle_id`."""
    bundle_id = bundle_id or state.bundle_id
    body = {"bundleId": bundle_id, "productId": f"{bundle_id}.{product}", "type": "auto-renewable"}
    async with httpx.AsyncClient(base_url=world.simulator.base_url, timeout=10) as sim:
        return dict(await _ok(await sim.post("/sim/purchases", json=body)))


async def _customer_jwt(api: httpx.AsyncClient, state: DevState, admin: dict[str, str]) -> str:
    url = f"/admin/publishers/{state.publisher_id}/customers/{state.customers[0]}/tokens"
    answer = await _ok(await api.post(url, headers=admin))
    return str(answer["jwt"])


# What the demo publisher's apps sell: (bundle, product suffix, simulator type, offer).
CATALOG = [
    ("com.demo.tv", "pro.monthly", "auto-renewable", MONTHLY_OFFER),
    ("com.demo.tv", "lifetime", "non-consumable", LIFETIME_OFFER),
    (TV_BUNDLE_ID, "pro.monthly", "auto-renewable", MONTHLY_OFFER),
]


def _curl(
    method: str, url: str, token: str | None = None, body: Any = None, bearer: str | None = None
) -> str:
    """A command to paste: plain words, one line, nothing shortened; `token` a publisher's,
    `bearer` a customer JWT."""
    shown = f"'{url}'" if any(c in url for c in "?&<>") else url  # no glob, no redirection
    words = ["curl -s"] + ([f"-X {method}"] if method != "GET" else []) + [shown]
    if token is not None:
        words.append(f"-H 'X-Publisher-Token: {token}'")
    if bearer is not None:
        words.append(f"-H 'Authorization: Bearer {bearer}'")
    if body is not None:
        words += ["-H 'Content-Type: application/json'", f"-d '{json.dumps(body)}'"]
    return " ".join(words)


def catalog_lines(state: DevState) -> list[str]:
    """The simulator's products, by app, and the offer each is mapped to."""
    apps = {"com.demo.tv": state.bundle_id, TV_BUNDLE_ID: state.tv_bundle_id}
    rows = [
        (apps[app], f"{apps[app]}.{product}", kind, offer) for app, product, kind, offer in CATALOG
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"  {bundle:<{widths[0]}}  {product:<{widths[1]}}  {kind:<{widths[2]}}  -> offer {offer}"
        for bundle, product, kind, offer in rows
    ]


def follow_up_lines(
    api_url: str, sim_url: str, state: DevState, jwt: str, purchase: dict[str, Any], ttl: int
) -> list[str]:
    """The commands a newcomer tries next, every id and token filled in."""
    pid, token, customer = state.publisher_id, state.publisher_token, state.customers[0]
    transaction = purchase["transactionId"]
    others = ", ".join(map(str, state.customers[1:]))
    admin = f"{api_url}/admin/publishers/{pid}"
    lifetime = {"bundleId": state.bundle_id, "productId": f"{state.bundle_id}.lifetime"}
    return [
        f"# The customer's entitlement, with its JWT (valid {ttl // 60} minutes), then as the"
        " publisher:",
        _curl("GET", f"{api_url}/entitlements/{MONTHLY_OFFER}", bearer=jwt),
        _curl(
            "GET",
            f"{api_url}/3.1/entitlements/customer_id/{customer}/offer_id/{MONTHLY_OFFER}",
            token,
        ),
        "# The publisher's subscriptions:",
        _curl("GET", f"{api_url}/3.1/subscriptions?customerId={customer}", token),
        "# Apple renews, refunds or expires that purchase (the simulator notifies the service;",
        f"# revoke, auto-renew, grace-period and the rest are in {sim_url}/docs under /sim):",
        _curl("POST", f"{sim_url}/sim/purchases/{transaction}/renew"),
        _curl("POST", f"{sim_url}/sim/purchases/{transaction}/refund"),
        _curl("POST", f"{sim_url}/sim/purchases/{transaction}/expire"),
        "# Another purchase (register the transactionId it answers, as above):",
        _curl("POST", f"{sim_url}/sim/purchases", body=lifetime | {"type": "non-consumable"}),
        f"# A customer JWT for another customer ({others}; each lasts {ttl // 60} minutes):",
        _curl("POST", f"{admin}/customers/{state.customers[1]}/tokens", token),
        "# What the service sent and received: webhook deliveries, Apple's notifications:",
        _curl("GET", f"{admin}/webhook-deliveries", token),
        _curl("GET", f"{admin}/notifications", token),
    ]


def _welcome(
    api_url: str, world: DevWorld, state: DevState, jwt: str, purchase: dict[str, Any]
) -> None:
    body = json.dumps(
        {"cleengCustomerId": state.customers[0], "transactionId": purchase["transactionId"]}
    )
    curl = (
        f"curl -s -X POST {api_url}/storekit2/purchases \\\n"
        f"  -H 'X-Publisher-Token: {state.publisher_token}' \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d '{body}'"
    )
    sim_url, ttl = world.simulator.base_url, world.settings.customer_token_ttl
    info = [
        f"API            {api_url}   (docs: {api_url}/docs)",
        f"console        {api_url}/console   (the admin token signs in)",
        f"simulator      {sim_url}   (docs: {sim_url}/docs)",
        f"webhooks to    {world.receiver.base_url}/hooks (printed below as they arrive)",
        f"publisher      {state.publisher_id}",
        f"apps           {state.bundle_id}, {state.tv_bundle_id}",
        f"customers      {', '.join(map(str, state.customers))}",
    ]
    console.print(Panel("\n".join(info), title="storekit-sync dev", expand=False))
    poll = _curl(
        "GET", f"{api_url}/purchases/synchronizations/<synchronizationId>", state.publisher_token
    )
    # Plain prints: tokens and commands must stay whole for copy and paste.
    print(f"\npublisher token: {state.publisher_token}")
    print(f"admin token:     {world.settings.admin_token}")
    print(f"\ncustomer JWT for {state.customers[0]} (valid {ttl // 60} minutes):\n{jwt}\n")
    print("Register the purchase the simulator just made:\n")
    print(curl + "\n")
    print("Then poll the synchronizationId it answers:\n")
    print(poll + "\n")
    print("The simulator's products (bundle id, product id, type) and their offers:\n")
    print("\n".join(catalog_lines(state)) + "\n")
    print("More to try:\n")
    print(
        "\n".join(follow_up_lines(api_url, sim_url, state, jwt, purchase, ttl)) + "\n", flush=True
    )
    console.print("Ctrl-C stops everything; the data stays in", str(world.settings.data_dir))


async def _serve(world: DevWorld, listening: socket.socket) -> None:
    from app.main import create_app

    host, port = listening.getsockname()[:2]
    config = uvicorn.Config(create_app(world.settings), log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.05)
    api_url = f"http://{host}:{port}"
    try:
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
            state = await seed(api, world)
            purchase = await buy(world, state)
            jwt = await _customer_jwt(
                api, state, {"X-Admin-Token": str(world.settings.admin_token)}
            )
    except Exception:
        server.should_exit = True
        await serving
        raise
    _welcome(api_url, world, state, jwt, purchase)
    await serving


def run_dev(listening: socket.socket, sim_port: int = 9000) -> None:
    """Serve the API on `listening` (claimed by the caller), beside the simulator and receiver."""
    world = start_world(sim_port=sim_port)
    try:
        asyncio.run(_serve(world, listening))
    except KeyboardInterrupt:
        pass
    finally:
        world.stop()


def main() -> None:
    """`python -m app.dev.dev API_URL SIMULATOR_URL`: seed the demo publisher into a running
    service (docker-compose.dev.yml's seed step). ADMIN_TOKEN and DATA_DIR come from the
    environment (or Docker secrets), and SIMULATOR_CONTROL_TOKEN when the simulator has one."""
    import os
    import sys

    settings = load_settings()
    api_url, sim_url = sys.argv[1], sys.argv[2]
    sim_token = os.environ.get("SIMULATOR_CONTROL_TOKEN") or None

    async def run() -> DevState:
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
            admin, data_dir = str(settings.admin_token), settings.data_dir
            return await seed_publisher(api, sim_url, admin, data_dir, sim_token)

    state = asyncio.run(run())
    print(f"demo publisher {state.publisher_id}, token {state.publisher_token}", flush=True)


if __name__ == "__main__":
    main()
