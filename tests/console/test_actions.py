"""The console's actions: each confirmed on a page of its own, posted with the session's CSRF
token, and its outcome shown where the work appears."""

from __future__ import annotations

import re

from app.jobs.worker import Worker
from tests.helpers.api import ADMIN, new_publisher
from tests.helpers.appstore import Apple
from tests.helpers.console import Console, text_of
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.shop import Shop, add_app
from tests.helpers.simulator import closed_port_url, eventually
from tests.helpers.webhooks import subscribe


async def _failed_delivery(shop: Shop, worker: Worker, receiver: Receiver) -> int:
    await subscribe(shop.client, shop.publisher, receiver, ["actions"])
    receiver["actions"].replies.append(Reply(503))
    bought = await shop.purchase()
    await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    return int(
        await shop.context.db.fetchval(
            "SELECT id FROM webhook_deliveries WHERE publisher_id = $1", shop.publisher.id
        )
    )


async def test_a_delivery_is_replayed_after_confirmation(
    shop: Shop, worker: Worker, receiver: Receiver, operator: Console
) -> None:
    delivery = await _failed_delivery(shop, worker, receiver)
    base = f"/console/publishers/{shop.publisher.id}/deliveries/{delivery}"
    confirm = await operator.get(f"{base}/replay")
    assert confirm.status_code == 200
    assert "again, now, on a fresh retry schedule?" in text_of(confirm.text)
    assert len(receiver["actions"].arrivals) == 1  # asking changed nothing
    done = await operator.post(f"{base}/replay")
    assert done.status_code == 303
    assert done.headers["location"] == f"{base}?done=replayed"
    page = text_of((await operator.get(base, done="replayed")).text)
    assert "due again now" in page and "pending" in page
    assert await worker.drain() >= 1
    page = text_of((await operator.get(base)).text)
    assert "succeeded" in page and "Attempts 2" in page
    assert [a.payload is not None for a in receiver["actions"].arrivals] == [True, True]


async def test_an_action_without_its_csrf_token_does_nothing(
    shop: Shop, worker: Worker, receiver: Receiver, operator: Console
) -> None:
    delivery = await _failed_delivery(shop, worker, receiver)
    base = f"/console/publishers/{shop.publisher.id}/deliveries/{delivery}"
    operator.csrf, real = "forged", operator.csrf
    refused = await operator.post(f"{base}/replay")
    assert refused.status_code == 403
    operator.csrf = real
    cross = await operator.client.post(
        f"{base}/replay",
        content=f"csrf={real}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert cross.status_code == 403
    status = await shop.context.db.fetchval(
        "SELECT generation FROM webhook_deliveries WHERE id = $1", delivery
    )
    assert status == 0  # never replayed


async def test_a_purchase_is_synchronized_again_for_its_customer(
    shop: Shop, worker: Worker, operator: Console
) -> None:
    bought = await shop.purchase()
    customer = shop.customers[0]
    await shop.accepted(customer, bought["transactionId"])
    assert await worker.drain() == 1
    renewed = await shop.act(bought["transactionId"], "renew")
    base = f"/console/publishers/{shop.publisher.id}/purchases/{bought['originalTransactionId']}"
    confirm = text_of((await operator.get(f"{base}/resync")).text)
    assert (
        f"Register transaction {bought['transactionId']} again for customer {customer}" in confirm
    )
    done = await operator.post(f"{base}/resync")
    assert done.status_code == 303
    location = done.headers["location"]
    assert re.fullmatch(
        rf"/console/publishers/{shop.publisher.id}/syncs/[0-9a-f-]+\?done=resynced", location
    )
    sync_id = location.rsplit("/", 1)[1].split("?")[0]
    assert "being synchronized again" in text_of((await operator.client.get(location)).text)
    again = await operator.post(f"{base}/resync")  # one runs already
    assert again.status_code == 409
    assert "Not done" in text_of(again.text) and "SK2C0101" in again.text
    assert await worker.drain() == 1
    polled = await shop.poll(sync_id)
    assert polled["result"] == "PURCHASE_OWNERSHIP_UNCHANGED"
    assert polled["cleengCustomerId"] == customer
    listed = await shop.subscriptions(customerId=customer)
    assert listed["items"][0]["latestTransactionId"] == renewed["transactionId"]


async def _attempts_shown(operator: Console, location: str) -> str:
    """The test notification's page, once it shows one of Apple's attempts."""

    async def shown() -> str | None:
        page = await operator.client.get(location)
        assert page.status_code == 200, page.text
        text = text_of(page.text)
        return None if "has not attempted it yet" in text else text

    return await eventually(shown)


async def test_a_test_notification_is_sent_and_its_arrival_shown(
    apple: Apple, operator: Console
) -> None:
    pid = apple.shop.publisher.id
    publisher = text_of((await operator.get(f"/console/publishers/{pid}")).text)
    assert "Send a test notification" in publisher
    confirm = await operator.get(f"/console/publishers/{pid}/test-notification")
    assert confirm.status_code == 200
    assert "Ask Apple to post a TEST notification" in text_of(confirm.text)
    assert await apple.stored() == 0  # asking changed nothing
    done = await operator.post(
        f"/console/publishers/{pid}/test-notification", bundleId=apple.shop.bundle_id
    )
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    assert re.fullmatch(
        rf"/console/publishers/{pid}/test-notifications/[A-Za-z0-9_.:-]+\?done=requested",
        location,
    )
    page = await _attempts_shown(operator, location)
    assert "Apple took the request" in page
    assert "SUCCESS" in page and "received" in page and "not yet" not in page
    [note] = await apple.notifications()
    assert note["notificationType"] == "TEST"


async def test_a_test_notification_that_did_not_arrive_says_what_to_check(
    apple: Apple, operator: Console
) -> None:
    pid = apple.shop.publisher.id
    other = await add_app(apple.shop)
    await apple.notify_to(closed_port_url(), other)
    done = await operator.post(f"/console/publishers/{pid}/test-notification", bundleId=other)
    assert done.status_code == 303, done.text
    page = await _attempts_shown(operator, done.headers["location"])
    assert "SOCKET_ISSUE" in page and "not yet" in page
    assert f"/apple/notifications/{pid}" in page
    assert await apple.stored() == 0


async def test_a_refused_test_notification_says_why(apple: Apple, operator: Console) -> None:
    pid = apple.shop.publisher.id
    refused = await operator.post(
        f"/console/publishers/{pid}/test-notification", bundleId="com.example.unknown"
    )
    assert refused.status_code == 400
    text = text_of(refused.text)
    assert "Not done" in text and "com.example.unknown is not an app of this publisher" in text
    forged = await operator.client.post(
        f"/console/publishers/{pid}/test-notification",
        content=f"csrf=forged&bundleId={apple.shop.bundle_id}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert forged.status_code == 403
    unknown = await operator.get(f"/console/publishers/{pid}/test-notifications/nosuchtoken")
    assert unknown.status_code == 404
    assert "no test notification with this token" in text_of(unknown.text)


async def test_a_test_notification_without_an_active_app_is_refused_not_failed(
    operator: Console,
) -> None:
    """The API answers SK2C0004 with its contract's 500; the console says it is not done because
    of the publisher's state (409), not that the service failed."""
    bare = await new_publisher(operator.client)
    refused = await operator.post(f"/console/publishers/{bare.id}/test-notification")
    assert refused.status_code == 409
    text = text_of(refused.text)
    assert "Not done" in text and "StoreKit2 integration not activated (SK2C0004)" in text


async def test_apple_unavailable_for_a_test_notification_is_a_503(
    apple: Apple, operator: Console
) -> None:
    await apple.shop.fault("server_error")
    pid = apple.shop.publisher.id
    answer = await operator.post(f"/console/publishers/{pid}/test-notification")
    assert answer.status_code == 503
    assert "S0002" in text_of(answer.text)


async def test_a_purchase_of_a_publisher_turned_off_is_refused_not_failed(
    shop: Shop, worker: Worker, operator: Console
) -> None:
    bought = await shop.purchase()
    await shop.accepted(shop.customers[0], bought["transactionId"])
    assert await worker.drain() == 1
    off = await shop.client.delete(
        f"/admin/publishers/{shop.publisher.id}/storekit2", headers=ADMIN
    )
    assert off.status_code == 204
    base = f"/console/publishers/{shop.publisher.id}/purchases/{bought['originalTransactionId']}"
    refused = await operator.post(f"{base}/resync")
    assert refused.status_code == 409
    text = text_of(refused.text)
    assert "Not done" in text and "SK2C0004" in text
