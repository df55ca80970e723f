"""Apple's rate limits, enforced per app, environment and endpoint; seen by Apple's client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.TransactionHistoryRequest import TransactionHistoryRequest

from app.simulator import SimulatorState
from app.simulator.ratelimit import RateLimits
from app.simulator.server import SimulatorServer
from tests.helpers.simulator import (
    MakeClient,
    SimApp,
    apple_error,
    buy,
    closed_port_url,
    eventually,
    register_app,
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RetryAfter:
    """The ``Retry-After`` of every answer Apple's client received (its exception has none)."""

    def __init__(self, client: AsyncAppStoreServerAPIClient) -> None:
        self.seen: list[str] = []

        async def keep(response: httpx.Response) -> None:
            if "retry-after" in response.headers:
                self.seen.append(response.headers["retry-after"])

        client.http_client.event_hooks["response"].append(keep)


async def _limit(control: httpx.AsyncClient, app: SimApp, **body: object) -> None:
    answer = await control.put(f"/sim/apps/{app.bundle_id}/rate-limit", json=body)
    assert answer.status_code == 200, answer.text


async def test_apples_figures_by_default(control: httpx.AsyncClient) -> None:
    limits = (await control.get("/sim/rate-limits")).json()
    assert (limits["enabled"], limits["windowSeconds"], limits["budget"]) == (True, 3600.0, None)
    endpoints = limits["endpoints"]
    for endpoint, production in [
        ("transaction_info", 180_000),
        ("subscription_statuses", 180_000),
        ("transaction_history", 180_000),
        ("notification_history", 180_000),
        ("extend_renewal_date", 72_000),
        ("app_account_token", 72_000),
        ("order_lookup", 36_000),
        ("refund_history", 36_000),
        ("test_notification", 3_600),
        ("mass_extend", 3_600),
    ]:
        assert endpoints[endpoint]["Production"] == production, endpoint
        assert endpoints[endpoint]["Sandbox"] == production // 10, endpoint


async def test_over_the_budget_apples_client_sees_429_and_when_to_retry(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await _limit(control, app, budget=3, windowSeconds=60)
    client = apple(app)
    watch = RetryAfter(client)
    before = _now_ms()
    for _ in range(3):
        await client.get_transaction_info(bought["transactionId"])
    after_first = _now_ms()
    assert await apple_error(client.get_transaction_info(bought["transactionId"])) == (429, 4290000)
    [retry_after] = watch.seen
    assert before + 60_000 <= int(retry_after) <= after_first + 60_000


async def test_the_rate_resumes_when_the_window_closes(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await _limit(control, app, budget=2, windowSeconds=1.5)
    client = apple(app)
    watch = RetryAfter(client)
    for _ in range(2):
        await client.get_all_subscription_statuses(bought["transactionId"])
    refused = client.get_all_subscription_statuses(bought["transactionId"])
    assert await apple_error(refused) == (429, 4290000)
    retry_at = int(watch.seen[0])

    async def window_closed() -> bool | None:
        return True if _now_ms() >= retry_at else None

    await eventually(window_closed)
    assert (await client.get_all_subscription_statuses(bought["transactionId"])).data


async def test_budgets_are_per_app_environment_and_endpoint(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    sandbox = await buy(control, app, "consumable")
    production = await buy(control, app, "consumable", environment="Production")
    other_app = await register_app(control, None)
    elsewhere = await buy(control, other_app, "consumable")
    await _limit(control, app, budget=1, environment="Sandbox", endpoint="transaction_info")
    client = apple(app)
    await client.get_transaction_info(sandbox["transactionId"])
    assert await apple_error(client.get_transaction_info(sandbox["transactionId"])) == (
        429,
        4290000,
    )
    production_client = apple(app, Environment.PRODUCTION)
    for _ in range(3):
        await production_client.get_transaction_info(production["transactionId"])
        await client.get_transaction_history(
            sandbox["transactionId"], None, TransactionHistoryRequest()
        )
        await apple(other_app).get_transaction_info(elsewhere["transactionId"])


async def test_only_authenticated_calls_count(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await _limit(control, app, budget=1)
    path = f"/inApps/v1/transactions/{bought['transactionId']}"
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        for _ in range(3):
            refused = await http.get(path, headers={"Authorization": "Bearer junk"})
            assert refused.status_code == 401
    client = apple(app)
    await client.get_transaction_info(bought["transactionId"])
    assert await apple_error(client.get_transaction_info(bought["transactionId"])) == (429, 4290000)


async def test_refused_calls_do_not_count_and_an_app_budget_can_be_lifted(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await _limit(control, app, budget=0, endpoint="transaction_info")
    client = apple(app)
    for _ in range(3):
        assert await apple_error(client.get_transaction_info(bought["transactionId"])) == (
            429,
            4290000,
        )
    assert (await control.delete(f"/sim/apps/{app.bundle_id}/rate-limit")).status_code == 204
    assert (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    assert (await control.delete("/sim/apps/com.example.nobody/rate-limit")).status_code == 404
    bad = await control.put(
        f"/sim/apps/{app.bundle_id}/rate-limit", json={"budget": 1, "endpoint": "nope"}
    )
    assert bad.status_code == 422


@pytest.fixture
def small_window() -> Iterator[SimulatorServer]:
    """A simulator whose window is ten seconds: Apple's budgets shrink with it."""
    with SimulatorServer(SimulatorState(rate_limits=RateLimits(window_seconds=10))) as server:
        yield server


async def test_apples_figures_scale_with_the_window(
    small_window: SimulatorServer, apple: MakeClient
) -> None:
    async with httpx.AsyncClient(base_url=small_window.base_url) as control:
        app = await register_app(control, closed_port_url())
        limits = (await control.get("/sim/rate-limits")).json()["endpoints"]
        assert limits["test_notification"] == {"perSecond": 1.0, "Production": 10, "Sandbox": 1}
        sandbox = apple(app, base_url=small_window.base_url + "/sandbox")
        await sandbox.request_test_notification()
        assert await apple_error(sandbox.request_test_notification()) == (429, 4290000)
        production = apple(app, base_url=small_window.base_url + "/production")
        for _ in range(10):
            await production.request_test_notification()
        assert await apple_error(production.request_test_notification()) == (429, 4290000)
        off = await control.put("/sim/rate-limits", json={"enabled": False})
        assert off.json()["enabled"] is False
        await sandbox.request_test_notification()
        every = await control.put("/sim/rate-limits", json={"enabled": True, "budget": 2})
        assert every.json()["endpoints"]["transaction_info"]["Sandbox"] == 2
