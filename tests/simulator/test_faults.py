"""Injected faults reach Apple's library exactly as Apple's own failures would."""

from __future__ import annotations

import time

import httpx
import pytest
from appstoreserverlibrary.api_client import APIError, APIException

from app.simulator.server import SimulatorServer
from tests.helpers.simulator import MakeClient, SimApp, act, add_fault, buy


@pytest.mark.parametrize(
    ("kind", "status", "code", "error"),
    [
        ("rate_limit", 429, 4290000, APIError.RATE_LIMIT_EXCEEDED),
        ("server_error", 500, 5000001, APIError.GENERAL_INTERNAL_RETRYABLE),
        ("not_found", 404, 4040010, APIError.TRANSACTION_ID_NOT_FOUND),
        ("unauthorized", 401, None, None),
    ],
)
async def test_answering_faults(
    control: httpx.AsyncClient,
    app: SimApp,
    apple: MakeClient,
    kind: str,
    status: int,
    code: int | None,
    error: APIError | None,
) -> None:
    bought = await buy(control, app)
    await add_fault(control, kind)
    with pytest.raises(APIException) as caught:
        await apple(app).get_transaction_info(bought["transactionId"])
    assert caught.value.http_status_code == status
    assert (caught.value.raw_api_error, caught.value.api_error) == (code, error)


async def test_rate_limit_says_when_to_retry_in_unix_milliseconds(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "rate_limit", retryAfterMs=5000)
    token = apple(app)._generate_token()
    before = time.time_ns() // 1_000_000
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        response = await http.get(
            f"/inApps/v1/transactions/{bought['transactionId']}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert before + 5000 <= int(response.headers["retry-after"]) <= before + 6000


async def test_drop_closes_the_connection_without_an_answer(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "drop", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await apple(app).get_transaction_info(bought["transactionId"])
    assert (await apple(app).get_transaction_info(bought["transactionId"])).signedTransactionInfo


async def test_delay_holds_the_answer(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "delay", delaySeconds=0.3)
    started = time.monotonic()
    answer = await apple(app).get_transaction_info(bought["transactionId"])
    assert time.monotonic() - started >= 0.3
    assert answer.signedTransactionInfo


async def test_a_delay_longer_than_the_clients_timeout_is_a_timeout(
    sim: SimulatorServer, control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "delay", delaySeconds=1.0, times=1)
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=0.1) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(
                f"/inApps/v1/transactions/{bought['transactionId']}",
                headers={"Authorization": f"Bearer {apple(app)._generate_token()}"},
            )


async def test_times_limits_a_fault(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "server_error", times=2)
    client = apple(app)
    for _ in range(2):
        with pytest.raises(APIException):
            await client.get_transaction_info(bought["transactionId"])
    assert (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    assert (await control.get("/sim/faults")).json() == []


async def test_a_scoped_fault_hits_only_that_purchase_under_any_of_its_ids(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    target, other = await buy(control, app), await buy(control, app)
    renewal = (await act(control, target["transactionId"], "renew", notify=False))["transactionId"]
    await add_fault(control, "not_found", transactionId=target["transactionId"])
    client = apple(app)
    assert (await client.get_transaction_info(other["transactionId"])).signedTransactionInfo
    for transaction_id in (target["transactionId"], renewal):
        with pytest.raises(APIException) as caught:
            await client.get_all_subscription_statuses(transaction_id)
        assert caught.value.raw_api_error == 4040010


async def test_share_zero_never_fires_and_a_removed_fault_stops(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "server_error", share=0.0)
    client = apple(app)
    assert (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo
    fault_id = await add_fault(control, "server_error")
    with pytest.raises(APIException):
        await client.get_transaction_info(bought["transactionId"])
    assert (await control.delete(f"/sim/faults/{fault_id}")).status_code == 204
    assert (await control.delete(f"/sim/faults/{fault_id}")).status_code == 404
    assert (await client.get_transaction_info(bought["transactionId"])).signedTransactionInfo


async def test_a_share_fails_about_that_share_of_calls(
    control: httpx.AsyncClient, app: SimApp, apple: MakeClient
) -> None:
    bought = await buy(control, app)
    await add_fault(control, "server_error", share=0.5)
    client, failures = apple(app), 0
    for _ in range(60):
        try:
            await client.get_transaction_info(bought["transactionId"])
        except APIException:
            failures += 1
    assert 10 <= failures <= 50
    hits = (await control.get("/sim/faults")).json()[0]["hits"]
    assert hits == failures


async def test_clearing_faults(control: httpx.AsyncClient, app: SimApp, apple: MakeClient) -> None:
    bought = await buy(control, app)
    await add_fault(control, "rate_limit")
    await add_fault(control, "drop")
    assert (await control.delete("/sim/faults")).status_code == 204
    assert (await apple(app).get_transaction_info(bought["transactionId"])).signedTransactionInfo
