"""Webhooks in the developer console and the threshold email choice, in a real Chromium against `wattfare serve`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import sign_up
from tests.server.web.looks import look
from tests.server.web.servers import session_token, wattfare_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

NOWHERE = "http://127.0.0.1:9/wattfare-hook"  # the discard port: nothing listens, every attempt fails


def wait_for_an_attempt(page: Page) -> None:
    """Reload the endpoint's page until the delivery loop (every second) has tried the delivery once."""
    deadline = time.monotonic() + 20
    attempts = page.locator("[data-test=delivery-attempts]")
    while not (attempts.count() and attempts.first.inner_text() != "0"):
        assert time.monotonic() < deadline, page.content()
        time.sleep(0.5)
        page.reload()


def test_a_developer_adds_an_endpoint_reads_its_secret_once_and_a_member_chooses_emails(
    tmp_path: Path, chromium: Chromium
) -> None:
    with wattfare_server(tmp_path, []) as wattfare:
        browser = chromium.launch()
        page = browser.new_page()

        # A member approves a live connection, then chooses to be emailed at 100% of its cap.
        page.goto(f"{wattfare.base_url}/connect?session={session_token(wattfare, 'ada')}")
        sign_up(page, "ada@example.com")
        page.click("[data-test=approve]")
        expect(page.locator("[data-test=result]")).to_contain_text("is connected")
        page.goto(f"{wattfare.base_url}/account")
        choice = page.locator("[data-test=connection] [data-test=alert-percent]")
        expect(choice).to_have_value("80")
        choice.select_option("100")
        page.click("[data-test=save-alert]")
        expect(page.locator("[data-test=notice]")).to_contain_text("spent its whole monthly cap")
        expect(choice).to_have_value("100")
        look(page, "account-threshold-email")

        # The same person registers an app and adds a test-mode endpoint: the secret is shown once.
        page.goto(f"{wattfare.base_url}/developers")
        form = page.locator("[data-test=register-form]")
        form.locator("input[name=name]").fill("Order desk")
        form.locator("button[type=submit]").click()
        test_key = page.locator("[data-test=secret-test]").inner_text()
        page.click("[data-test=continue]")
        app_url = page.url
        expect(page.locator("[data-test=no-webhooks]")).to_be_visible()
        page.fill("[data-test=webhook-url-input]", NOWHERE)
        page.fill("[data-test=webhook-description-input]", "Order sync")
        page.click("[data-test=add-webhook]")
        secret = page.locator("[data-test=webhook-secret]").inner_text()
        assert secret.startswith("whsec_")
        expect(page.locator("[data-test=secret-once]")).to_contain_text("never show it again")
        look(page, "webhook-secret")

        page.click("[data-test=continue]")
        expect(page.locator("[data-test=webhook-state]")).to_have_text("Enabled")
        assert secret not in page.content()
        # Something happens for one of the app's test users: the loop tries to deliver it, and says how it went.
        answer = httpx.post(
            f"{wattfare.api_url}/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {test_key}", "Wattfare-User": "user-1"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        wait_for_an_attempt(page)
        delivery = page.locator("[data-test=delivery]").first
        expect(delivery.locator("[data-test=delivery-type]")).to_have_text("connection.approved")
        expect(delivery).to_have_attribute("data-state", "pending")
        expect(delivery.locator("[data-test=delivery-answer]")).to_contain_text("ConnectError")
        look(page, "webhook-endpoint")

        page.goto(app_url)
        row = page.locator("[data-test=webhook-endpoint]")
        expect(row).to_have_count(1)
        expect(row.locator("[data-test=webhook-url]")).to_have_text(NOWHERE)
        expect(row.locator("[data-test=webhook-description]")).to_have_text("Order sync")
        assert secret not in page.content()

        # A live endpoint must use https: refused with the message, the form as it was typed.
        page.goto(f"{app_url}?mode=live#webhooks")
        page.fill("[data-test=webhook-url-input]", "http://hooks.example.com/wattfare")
        page.click("[data-test=add-webhook]")
        expect(page.locator("[data-test=webhook-error]")).to_contain_text("Live-mode endpoints must use https://")
        expect(page.locator("[data-test=webhook-url-input]")).to_have_value("http://hooks.example.com/wattfare")
        expect(page.locator("[data-test=webhook-url-input]")).to_have_attribute("aria-invalid", "true")
        look(page, "webhook-refused")
