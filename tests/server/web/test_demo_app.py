"""The whole flow a person clicks through, in a real Chromium, against real server processes.

Wattfare runs as `wattfare serve`, the demo app (examples/demo_app) as its own uvicorn process, and the
browser talks to both as a visitor would: the button script, the consent popup, the account page.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import approve_in_popup, chat, demo_user, open_demo, sign_up
from tests.server.web.servers import (
    complete,
    demo_port,
    demo_process,
    rows,
    status_of,
    wattfare_cli,
    wattfare_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_with_test_keys_connect_needs_no_sign_in_and_the_chat_streams(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "test", port, tmp_path):
        browser = chromium.launch()
        page = open_demo(browser, demo_url)
        budget = page.locator("[data-test=budget]")
        expect(budget).to_have_attribute("data-state", "not-connected")
        popups: list[Page] = []
        page.on("popup", lambda popup: popups.append(popup))
        page.click("[data-test=connect]")
        expect(budget).to_have_attribute("data-state", "connected")
        expect(page.locator("[data-test=budget-text]")).to_contain_text("$5.00 left")
        assert popups == []  # no popup, no sign-in
        chat(page, "Hello there")
        reply = page.locator("li[data-test=assistant]").last
        expect(reply).to_have_attribute("data-done", "true")
        assert reply.inner_text().strip()
        status = status_of(wattfare, demo_user(browser, demo_url), "test")
        assert status["connected"] is True
        assert Decimal(str(status["spentUsd"])) > 0


def test_a_member_connects_in_the_popup_chats_sees_the_spend_and_revokes(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "live", port, tmp_path):
        browser = chromium.launch()
        page = open_demo(browser, demo_url)
        budget = page.locator("[data-test=budget]")
        expect(budget).to_have_attribute("data-state", "not-connected")

        with page.expect_popup() as opened:
            page.click("[data-test=connect]")
        popup = opened.value
        expect(popup.locator("[data-test=app-name]")).to_have_text("Test app")
        expect(popup.locator("[data-test=app-origin]")).to_have_text(demo_url)
        sign_up(popup, "Ada@Example.com")
        expect(popup.locator("[data-test=cap]")).to_have_value("5")  # the demo's suggested cap
        approve_in_popup(popup, cap="2")

        expect(budget).to_have_attribute("data-state", "connected")
        expect(page.locator("[data-test=budget-text]")).to_contain_text("$2.00 left")
        user = demo_user(browser, demo_url)
        assert status_of(wattfare, user)["limits"] == {"monthlyUsd": 2}

        # Connected but unfunded: the member has neither credits nor a linked key yet.
        chat(page, "Hello?")
        expect(budget).to_have_attribute("data-state", "funding-invalid")
        granted = wattfare_cli(wattfare, "credits", "grant", "ada@example.com", "1")
        assert granted.returncode == 0, granted.stdout + granted.stderr

        chat(page, "Tell me something nice")
        reply = page.locator("li[data-test=assistant]").last
        expect(reply).to_have_attribute("data-done", "true")
        assert reply.inner_text().strip()
        spent = Decimal(str(status_of(wattfare, user)["spentUsd"]))
        assert spent > 0

        account = browser.new_page()
        account.goto(f"{wattfare.base_url}/account")
        row = account.locator("[data-test=connection][data-app='Test app']")
        expect(row).to_have_attribute("data-state", "active")
        assert row.locator("[data-test=spent]").inner_text().startswith("$0.0")
        assert row.locator("[data-test=spent]").inner_text() != "$0.00"
        expect(account.locator("[data-test=chart] rect.bar")).to_have_count(1)
        # The chat drew on the member's credits, exactly what its connection was charged, all in the ledgers.
        charges = rows(wattfare.db_path, "SELECT SUM(amount) FROM credit_ledger WHERE kind = 'charge'")[0][0]
        assert charges == rows(wattfare.db_path, "SELECT spent FROM credit_accounts")[0][0]
        assert charges == rows(wattfare.db_path, "SELECT SUM(amount) FROM ledger WHERE mode = 'live'")[0][0]
        assert Decimal(charges) / 10**9 == spent  # type: ignore[arg-type]
        row.locator("[data-test=revoke]").click()
        expect(account.locator("[data-test=notice]")).to_contain_text("revoked")
        expect(row).to_have_attribute("data-state", "revoked")

        page.fill("[data-test=message]", "One more?")
        page.click("[data-test=send]")
        expect(budget).to_have_attribute("data-state", "revoked")
        expect(page.locator("[data-test=connect]")).to_have_text("Reconnect AI budget")
        expect(page.locator("[data-test=message]")).to_have_value("One more?")  # nothing was sent: the message is kept
        refused = complete(wattfare, user)
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "not_connected"


def test_a_blocked_or_closed_popup_rejects_clearly_instead_of_hanging(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "live", port, tmp_path):
        browser = chromium.launch()
        page = open_demo(browser, demo_url)
        budget = page.locator("[data-test=budget]")
        expect(budget).to_have_attribute("data-state", "not-connected")

        with page.expect_popup() as opened:
            page.click("[data-test=connect]")
        popup = opened.value
        expect(popup.locator("[data-test=app-name]")).to_have_text("Test app")
        popup.close()
        expect(page.locator("[data-test=budget-text]")).to_have_text(
            "You closed the Wattfare window before deciding, so nothing was connected."
        )
        expect(budget).to_have_attribute("data-state", "not-connected")

        # A popup blocker makes window.open return null (Playwright's own calls count as user gestures, so the
        # blocker is played by the page): connect() rejects at once.
        page.evaluate("() => { window.open = () => null; }")
        page.click("[data-test=connect]")
        expect(page.locator("[data-test=budget-text]")).to_contain_text("blocked the Wattfare window")
        blocked = page.evaluate(
            """(key) => Wattfare.createWattfare({publishableKey: key, session: () => "x.y.z"})
                 .connect().then(() => "resolved", (error) => error.code)""",
            wattfare.app.publishable_keys["live"],
        )
        assert blocked == "popup_blocked"
        assert status_of(wattfare, demo_user(browser, demo_url))["connected"] is False
