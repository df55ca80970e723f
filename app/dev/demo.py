"""`storekit-sync demo`: the whole flow once, on dev-style embedded parts, each step shown.

register → poll → webhooks → entitlement → renewal notification → refund; then a refund Apple
posts while the service is down, which the service recovers from Apple's notification history
when it starts again. Exits non-zero if any step does not do what the contract says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from app.dev.dev import MONTHLY_OFFER, DevState, DevWorld, buy, seed, start_world
from app.simulator.server import BackgroundServer

console = Console()


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


def _show(title: str, rows: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in rows.items():
        table.add_row(f"[bold]{key}[/bold]", str(value))
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
        self, api: httpx.AsyncClient, world: DevWorld, state: DevState, service: Service
    ) -> None:
        self.api, self.world, self.state, self.service = api, world, state, service
        self.publisher = {"X-Publisher-Token": state.publisher_token}
        self.customer = state.customers[0]

    def topics(self) -> list[str]:
        return [str(d.get("topic")) for d in self.world.deliveries]

    async def register(self, purchase: dict[str, Any]) -> str:
        body = {"cleengCustomerId": self.customer, "transactionId": purchase["transactionId"]}
        answer = await self.api.post("/storekit2/purchases", json=body, headers=self.publisher)
        _expect(answer.status_code == 202, f"register answered {answer.status_code}: {answer.text}")
        sync_id = str(answer.json()["synchronizationId"])
        _show("1. register the purchase: 202 Accepted", {"synchronizationId": sync_id, **body})
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
        _show(
            "2. poll: finalized",
            {k: body.get(k) for k in ("status", "result", "accessGranted", "offerId")},
        )

    async def webhooks(self) -> None:
        async def arrived() -> bool:
            return "inappPurchaseSyncResult" in self.topics()

        await _until("the inappPurchaseSyncResult webhook", arrived)
        _show(
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
        async with httpx.AsyncClient(base_url=self.world.simulator.base_url, timeout=15) as sim:
            answer = await sim.post(
                f"/sim/purchases/{transaction_id}/{action}", json={"notify": True}
            )
        _expect(answer.status_code == 200, f"the simulator's {action} failed: {answer.text}")
        return dict(answer.json())

    async def renewal(self, transaction_id: str, before: dict[str, Any]) -> None:
        await self.sim_action(transaction_id, "renew")

        async def renewed() -> dict[str, Any] | None:
            body = await self.entitlement(True)
            return body if body["expiresAt"] > before["expiresAt"] else None

        after = await _until("the renewal to reach the entitlement", renewed)
        await _until("the subscriptionRenewed webhook", self._topic("subscriptionRenewed"))
        _show(
            "5. Apple renews: notification applied",
            {"expiresAt before": before["expiresAt"], "expiresAt after": after["expiresAt"]},
        )

    async def refund(self, transaction_id: str) -> None:
        await self.sim_action(transaction_id, "refund")

        async def revoked() -> bool:
            return not (await self.entitlement_any())["accessGranted"]

        await _until("the refund to end access", revoked)
        await _until("the subscriptionTerminated webhook", self._topic("subscriptionTerminated"))
        _show("6. Apple refunds: access ends", await self.entitlement_any())

    async def entitlement_any(self, customer: int | None = None) -> dict[str, Any]:
        who = self.customer if customer is None else customer
        url = f"/3.1/entitlements/customer_id/{who}/offer_id/{MONTHLY_OFFER}"
        return dict((await self.api.get(url, headers=self.publisher)).json())

    async def synchronized(self, customer: int) -> dict[str, Any]:
        """A new purchase of the monthly offer, registered for `customer` and synchronized."""
        purchase = await buy(self.world, self.state)
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
        _show(
            "7. another purchase, another customer: access granted",
            {"customer": customer, "transactionId": purchase["transactionId"], **granted},
        )
        await asyncio.to_thread(self.service.stop)
        _show("8. the service stops", {"API": f"{self.service.base_url} (down)"})
        refunded = await self.sim_action(purchase["transactionId"], "refund")
        attempts = [a["sendAttemptResult"] for a in refunded["notification"]["attempts"]]
        _expect("SUCCESS" not in attempts, f"the refund reached a stopped service: {attempts}")
        _show(
            "9. Apple refunds meanwhile: its notification does not arrive",
            {
                "notificationType": "REFUND",
                "notificationUUID": refunded["notification"]["notificationUuid"],
                "sendAttemptResult": ", ".join(attempts),
            },
        )
        terminated_before = self.topics().count("subscriptionTerminated")
        await asyncio.to_thread(self.service.start)
        _show(
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
        _show(
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
        purchase = await buy(self.world, self.state)
        sync_id = await self.register(purchase)
        await self.poll(sync_id)
        await self.webhooks()
        before = await self.entitlement(True)
        _show("4. entitlement: access granted", before)
        await self.renewal(purchase["transactionId"], before)
        await self.refund(purchase["transactionId"])
        await self.missed_refund()


async def _main(world: DevWorld) -> None:
    service = Service(world)
    service.start()
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as api:
            state = await seed(api, world)
            await Demo(api, world, state, service).run()
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
