"""`storekit-sync demo`: the whole flow once, on dev-style embedded parts, each step shown.

register → poll → webhooks → entitlement → renewal notification → refund; then a refund Apple
posts while the service is down, which the service recovers from Apple's notification history
when it starts again. Exits non-zero if any step does not do what the contract says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from app.dev.dev import MONTHLY_OFFER, DevState, DevWorld, seed, start_world
from app.simulator.server import BackgroundServer

console = Console()
SECRET_HEADERS = ("x-publisher-token", "x-admin-token", "authorization")
SHOWN_HEADERS = (*SECRET_HEADERS, "content-type", "correlation-id")
NAMES = {
    "x-publisher-token": "X-Publisher-Token",
    "x-admin-token": "X-Admin-Token",
    "authorization": "Authorization",
    "content-type": "Content-Type",
    "correlation-id": "Correlation-Id",
}


def shortened(value: str) -> str:
    """A secret as the demo shows it: enough to tell which, never enough to use."""
    scheme, _, token = value.rpartition(" ")
    short = f"{token[:8]}…{token[-4:]}" if len(token) > 16 else "…"
    return f"{scheme} {short}" if scheme else short


def iso(seconds: object) -> object:
    """Unix seconds (an entitlement's `expiresAt`) as an ISO-8601 time, the number beside it."""
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        when = datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
        return f"{when} ({seconds})"
    return seconds


def readable(rows: dict[str, Any]) -> dict[str, Any]:
    """Every `expiresAt` (or "expiresAt …") shown as a time, nested entitlements included."""
    return {
        key: readable(value)
        if isinstance(value, dict)
        else iso(value)
        if key.startswith("expiresAt")
        else value
        for key, value in rows.items()
    }


@dataclass
class Requests:
    """The requests the demo makes, shown with each step so that they can be repeated by hand
    (against `storekit-sync dev`): method, path, the headers it set (secrets shortened), body.
    A request repeated while waiting (a poll) is shown once, with its count."""

    seen: list[tuple[str, int]] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        lines = [f"{request.method} {request.url.raw_path.decode()}"]
        for name in SHOWN_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                value = shortened(value) if name in SECRET_HEADERS else value
                lines.append(f"  {NAMES[name]}: {value}")
        if request.content:
            lines.append(f"  {request.content.decode()}")
        text = "\n".join(lines)
        if self.seen and self.seen[-1][0] == text:
            self.seen[-1] = (text, self.seen[-1][1] + 1)
        else:
            self.seen.append((text, 1))

    def take(self) -> list[str]:
        taken = []
        for text, n in self.seen:
            first, _, rest = text.partition("\n")
            again = f"   ({n} times, until it answered)" if n > 1 else ""
            taken.append(first + again + ("\n" + rest if rest else ""))
        self.seen.clear()
        return taken


class StepFailed(Exception):
    pass


async def _until(what: str, check: Callable[[], Awaitable[Any]], seconds: float = 20) -> Any:
    """Wait, with a spinner, until `check` returns something truthy."""
    deadline = time.monotonic() + seconds
    with console.status(f"waiting for {what}…"):
        while time.monotonic() < deadline:
            if value := await check():
                return value
            await asyncio.sleep(0.1)
    raise StepFailed(f"timed out waiting for {what}")


def _show(title: str, rows: dict[str, Any], requests: Requests | None = None) -> None:
    made = requests.take() if requests is not None else []
    if made:
        console.print(f"[dim]{escape(title.split(':')[0])}: the requests[/dim]")
        for text in made:  # plain lines, never wrapped by the console: they are to be copied
            console.print(escape(text), soft_wrap=True, highlight=False)
    table = Table(show_header=False, box=None)
    for key, value in readable(rows).items():
        table.add_row(f"[bold]{escape(key)}[/bold]", escape(str(value)))
    console.print(Panel(table, title=f"[green]✓[/green] {title}", expand=False))


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


class Service:
    """The API and its worker, on one port, stopped and started again as the demo says."""

    def __init__(self, world: DevWorld) -> None:
        self.world, self.port = world, 0
        self.server: BackgroundServer | None = None

    def start(self) -> None:
        from app.main import create_app

        self.server = BackgroundServer(create_app(self.world.settings), port=self.port)
        self.server.start()
        self.port = self.server.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Demo:
    def __init__(
        self,
        api: httpx.AsyncClient,
        world: DevWorld,
        state: DevState,
        service: Service,
        requests: Requests,
    ) -> None:
        self.api, self.world, self.state, self.service = api, world, state, service
        self.publisher = {"X-Publisher-Token": state.publisher_token}
        self.customer = state.customers[0]
        self.requests = requests
        self.sim = httpx.AsyncClient(
            base_url=world.simulator.base_url,
            timeout=15,
            event_hooks={"request": [requests.record]},
        )

    def show(self, title: str, rows: dict[str, Any]) -> None:
        _show(title, rows, self.requests)

    async def buy(self) -> dict[str, Any]:
        """A purchase of the monthly product in the simulator, in the first app."""
        bundle = self.state.bundle_id
        body = {"bundleId": bundle, "productId": f"{bundle}.pro.monthly", "type": "auto-renewable"}
        answer = await self.sim.post("/sim/purchases", json=body)
        _expect(answer.status_code == 201, f"the simulator's purchase failed: {answer.text}")
        return dict(answer.json())

    def topics(self) -> list[str]:
        return [str(d.get("topic")) for d in self.world.deliveries]

    async def register(self, purchase: dict[str, Any]) -> str:
        body = {"cleengCustomerId": self.customer, "transactionId": purchase["transactionId"]}
        answer = await self.api.post("/storekit2/purchases", json=body, headers=self.publisher)
        _expect(answer.status_code == 202, f"register answered {answer.status_code}: {answer.text}")
        sync_id = str(answer.json()["synchronizationId"])
        self.show("1. register the purchase: 202 Accepted", {"synchronizationId": sync_id, **body})
        return sync_id

    async def poll(self, sync_id: str) -> None:
        async def finalized() -> dict[str, Any] | None:
            answer = await self.api.get(
                f"/purchases/synchronizations/{sync_id}", headers=self.publisher
            )
            body = answer.json()
            return dict(body) if body.get("status") == "finalized" else None

        body = await _until("the sync to finalize", finalized)
        _expect(body["result"] == "SUBSCRIPTION_CREATED", f"unexpected result {body['result']}")
        self.show(
            "2. poll: finalized",
            {k: body.get(k) for k in ("status", "result", "accessGranted", "offerId")},
        )

    async def webhooks(self) -> None:
        async def arrived() -> bool:
            return "inappPurchaseSyncResult" in self.topics()

        await _until("the inappPurchaseSyncResult webhook", arrived)
        self.show(
            "3. webhooks delivered, signatures checked",
            {str(i + 1): t for i, t in enumerate(self.topics())},
        )

    async def entitlement(self, expect: bool) -> dict[str, Any]:
        url = f"/3.1/entitlements/customer_id/{self.customer}/offer_id/{MONTHLY_OFFER}"
        body = dict((await self.api.get(url, headers=self.publisher)).json())
        _expect(
            body.get("accessGranted") is expect, f"entitlement is {body}, expected access {expect}"
        )
        return body

    async def sim_action(self, transaction_id: str, action: str) -> dict[str, Any]:
        url = f"/sim/purchases/{transaction_id}/{action}"
        answer = await self.sim.post(url, json={"notify": True})
        _expect(answer.status_code == 200, f"the simulator's {action} failed: {answer.text}")
        return dict(answer.json())

    async def renewal(self, transaction_id: str, before: dict[str, Any]) -> None:
        await self.sim_action(transaction_id, "renew")

        async def renewed() -> dict[str, Any] | None:
            body = await self.entitlement(True)
            return body if body["expiresAt"] > before["expiresAt"] else None

        after = await _until("the renewal to reach the entitlement", renewed)
        await _until("the subscriptionRenewed webhook", self._topic("subscriptionRenewed"))
        self.show(
            "5. Apple renews: notification applied",
            {"expiresAt before": before["expiresAt"], "expiresAt after": after["expiresAt"]},
        )

    async def refund(self, transaction_id: str) -> None:
        await self.sim_action(transaction_id, "refund")

        async def revoked() -> bool:
            return not (await self.entitlement_any())["accessGranted"]

        await _until("the refund to end access", revoked)
        await _until("the subscriptionTerminated webhook", self._topic("subscriptionTerminated"))
        self.show("6. Apple refunds: access ends", await self.entitlement_any())

    async def entitlement_any(self, customer: int | None = None) -> dict[str, Any]:
        who = self.customer if customer is None else customer
        url = f"/3.1/entitlements/customer_id/{who}/offer_id/{MONTHLY_OFFER}"
        return dict((await self.api.get(url, headers=self.publisher)).json())

    async def synchronized(self, customer: int) -> dict[str, Any]:
        """A new purchase of the monthly offer, registered for `customer` and synchronized."""
        purchase = await self.buy()
        body = {"cleengCustomerId": customer, "transactionId": purchase["transactionId"]}
        answer = await self.api.post("/storekit2/purchases", json=body, headers=self.publisher)
        _expect(answer.status_code == 202, f"register answered {answer.status_code}")
        url = f"/purchases/synchronizations/{answer.json()['synchronizationId']}"

        async def finalized() -> bool:
            body = (await self.api.get(url, headers=self.publisher)).json()
            return bool(body.get("status") == "finalized")

        await _until("the sync to finalize", finalized)
        return purchase

    async def missed_refund(self) -> None:
        """Apple refunds while the service is down; the service learns it from Apple's history."""
        customer = self.state.customers[1]
        purchase = await self.synchronized(customer)
        granted = await self.entitlement_any(customer)
        _expect(granted["accessGranted"] is True, f"no access after the sync: {granted}")
        self.show(
            "7. another purchase, another customer: access granted",
            {"customer": customer, "transactionId": purchase["transactionId"], **granted},
        )
        await asyncio.to_thread(self.service.stop)
        self.show("8. the service stops", {"API": f"{self.service.base_url} (down)"})
        refunded = await self.sim_action(purchase["transactionId"], "refund")
        attempts = [a["sendAttemptResult"] for a in refunded["notification"]["attempts"]]
        _expect("SUCCESS" not in attempts, f"the refund reached a stopped service: {attempts}")
        self.show(
            "9. Apple refunds meanwhile: its notification does not arrive",
            {
                "notificationType": "REFUND",
                "notificationUUID": refunded["notification"]["notificationUuid"],
                "sendAttemptResult": ", ".join(attempts),
            },
        )
        terminated_before = self.topics().count("subscriptionTerminated")
        await asyncio.to_thread(self.service.start)
        self.show(
            "10. the service starts again",
            {"its first reconciliation pass": "reads Apple's notification history"},
        )

        async def revoked() -> bool:
            return not (await self.entitlement_any(customer))["accessGranted"]

        await _until("the refund, recovered from Apple's history, to end access", revoked)

        async def webhook() -> bool:
            return self.topics().count("subscriptionTerminated") > terminated_before

        await _until("the subscriptionTerminated webhook", webhook)
        url = f"/admin/publishers/{self.state.publisher_id}/notifications"
        notes = (await self.api.get(url, params={"limit": 1}, headers=self.publisher)).json()
        note = notes["items"][0]
        _expect(note["source"] == "history", f"the newest notification is {note}")
        self.show(
            "11. recovered from Apple's history alone: access ends",
            {
                "notification": f"{note['notificationType']} (source: {note['source']})",
                "outcome": note["outcome"],
                "entitlement": await self.entitlement_any(customer),
                "webhook": "subscriptionTerminated",
            },
        )

    def _topic(self, topic: str) -> Callable[[], Awaitable[bool]]:
        async def seen() -> bool:
            return topic in self.topics()

        return seen

    async def run(self) -> None:
        self.requests.take()  # the demo publisher's set-up, as `dev` does it: not shown
        try:
            await self.steps()
        finally:
            await self.sim.aclose()

    async def steps(self) -> None:
        purchase = await self.buy()
        sync_id = await self.register(purchase)
        await self.poll(sync_id)
        await self.webhooks()
        before = await self.entitlement(True)
        self.show("4. entitlement: access granted", before)
        await self.renewal(purchase["transactionId"], before)
        await self.refund(purchase["transactionId"])
        await self.missed_refund()


async def _main(world: DevWorld) -> None:
    service = Service(world)
    service.start()
    try:
        requests = Requests()
        hooks = {"request": [requests.record]}
        async with httpx.AsyncClient(
            base_url=service.base_url, timeout=15, event_hooks=hooks
        ) as api:
            state = await seed(api, world)
            await Demo(api, world, state, service, requests).run()
    finally:
        service.stop()


def run_demo() -> int:
    world = start_world(sim_port=0)
    try:
        asyncio.run(_main(world))
    except StepFailed as exc:
        console.print(f"[red]✗ {exc}[/red]")
        return 1
    finally:
        world.stop()
    console.print("[green]The whole flow works.[/green]")
    return 0
