"""The console in a real browser (Debian's Chromium, headless): sign in, find a customer made
through the API, read the timeline, replay a delivery and see its new attempt, read the overview.
Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

from typing import Any

import pytest

from app.activity.flush import flush
from app.jobs.worker import Worker
from app.simulator.server import BackgroundServer
from tests.helpers import browser as chromium
from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.shop import Shop
from tests.helpers.webhooks import subscribe

why = chromium.missing()
if why is not None and chromium.required():
    pytest.fail(f"console browser tests cannot run: {why}", pytrace=False)
if why is not None:
    pytest.skip(f"console browser tests skipped: {why}", allow_module_level=True)

from playwright.async_api import Page, expect  # noqa: E402 (only once Playwright is known here)

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


async def _page(browser: Any, viewport: dict[str, int]) -> Page:
    context = await browser.new_context(viewport=viewport, locale="en-GB", reduced_motion="reduce")
    page: Page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def _sign_in(page: Page, base_url: str, token: str) -> None:
    await page.goto(f"{base_url}/console")
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    await page.get_by_label("Token").fill(token)
    await page.get_by_label("Token").press("Enter")
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


async def _a_customer_with_a_failed_webhook(
    shop: Shop, worker: Worker, receiver: Receiver
) -> tuple[dict[str, Any], int, str]:
    """A purchase registered through the API and synced; its webhook's first attempt got a 500."""
    await subscribe(shop.client, shop.publisher, receiver, ["browser"])
    receiver["browser"].replies.append(Reply(500))
    bought = await shop.purchase()
    customer = shop.customers[0]
    await shop.accepted(customer, bought["transactionId"])
    assert await worker.drain() == 1
    context = shop.context
    await flush(context.db, context.activity, context.clock.now())
    email = await context.db.fetchval("SELECT email FROM customers WHERE id = $1", customer)
    return bought, customer, str(email)


async def test_find_a_customer_replay_a_delivery_and_read_the_overview(
    browser: Any, shop: Shop, worker: Worker, receiver: Receiver, served: BackgroundServer
) -> None:
    bought, customer, email = await _a_customer_with_a_failed_webhook(shop, worker, receiver)
    page = await _page(browser, LAPTOP)
    await _sign_in(page, served.base_url, ADMIN_TOKEN)
    await page.get_by_label("Publisher", exact=True).select_option(str(shop.publisher.id))
    await page.get_by_role("button", name="Show").click()
    await expect(
        page.get_by_text(f"Publisher {shop.publisher.id}, over the last hour")
    ).to_be_visible()
    syncs = page.locator("#chart-syncs")
    await expect(syncs.get_by_text("1 finalized")).to_be_visible()
    assert await syncs.locator("svg rect").count() == 1
    assert "SUBSCRIPTION_CREATED: 1" in str(await syncs.locator("svg rect title").text_content())
    await page.screenshot(path=chromium.screenshot_path("console-overview"), full_page=True)

    await page.get_by_label("Find").fill(email)
    await page.get_by_label("Find").press("Enter")
    await expect(page.get_by_role("heading", name=f"Customer {customer}")).to_be_visible()
    timeline = page.locator("ol.timeline")
    await expect(timeline.locator(".badge", has_text="SUBSCRIPTION_CREATED")).to_be_visible()
    await expect(timeline.get_by_text("inappPurchaseSyncResult", exact=True)).to_be_visible()
    await page.get_by_text("Apple said: the transaction").first.click()
    await expect(page.get_by_text(bought["transactionId"]).first).to_be_visible()
    await page.screenshot(path=chromium.screenshot_path("console-timeline"), full_page=True)

    delivery = page.locator("li.delivery").first
    await expect(delivery.locator(".badge").first).to_have_text("pending")
    await expect(delivery.locator("table.attempts tbody tr")).to_have_count(1)
    await delivery.get_by_role("link", name="Replay…").click()
    await expect(page.get_by_role("heading", name="Replay a delivery")).to_be_visible()
    await page.get_by_role("button", name="Replay the delivery").click()
    await expect(page.get_by_role("status")).to_contain_text("due again now")

    assert await worker.drain() >= 1  # the worker sends it again
    await page.reload()
    attempts = page.locator("table.attempts tbody tr")
    await expect(attempts).to_have_count(2)
    await expect(attempts.nth(1)).to_contain_text("200")
    await expect(page.locator("dl.facts .badge").first).to_have_text("succeeded")
    await page.screenshot(path=chromium.screenshot_path("console-replayed"), full_page=True)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()


async def test_a_wrong_token_is_refused_and_the_cookie_is_out_of_scripts_reach(
    browser: Any, served: BackgroundServer
) -> None:
    page = await _page(browser, LAPTOP)
    await page.goto(f"{served.base_url}/console/login")
    await page.get_by_label("Token").fill("skp_not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    await expect(page.get_by_label("Token")).to_have_value("")  # never echoed back
    await _sign_in(page, served.base_url, ADMIN_TOKEN)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["storekit_console"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in session["value"]
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it


async def test_the_console_reads_on_a_phone_and_works_with_a_keyboard(
    browser: Any, shop: Shop, worker: Worker, receiver: Receiver, served: BackgroundServer
) -> None:
    _, customer, _ = await _a_customer_with_a_failed_webhook(shop, worker, receiver)
    page = await _page(browser, PHONE)
    await page.goto(f"{served.base_url}/console/login")
    await page.keyboard.press("Tab")  # the first stop is the skip link
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Token")).to_be_focused()
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    await page.goto(f"{served.base_url}/console/customers/{customer}")
    await expect(page.get_by_role("heading", name=f"Customer {customer}")).to_be_visible()
    wide = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide, "the page scrolls sideways on a phone"
    await page.screenshot(path=chromium.screenshot_path("console-phone"), full_page=True)
