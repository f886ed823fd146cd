"""Forgot password, end to end: a real Chromium, a real `wattfare serve`, a real SMTP server that gets the link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import sign_in, sign_up
from tests.server.web.servers import wattfare_server
from tests.support.smtp_server import smtp_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

NEW_PASSWORD = "a brand new passphrase"


def test_a_member_who_forgot_their_password_resets_it_from_the_emailed_link_and_lands_signed_in(
    tmp_path: Path, chromium: Chromium
) -> None:
    email = "forgetful@example.com"
    with smtp_server() as mail, wattfare_server(tmp_path, [], env={"WATTFARE_SMTP_URL": mail.url}) as wattfare:
        page = chromium.launch().new_page()
        page.goto(f"{wattfare.base_url}/signup")
        sign_up(page, email)
        expect(page).to_have_url(f"{wattfare.base_url}/account")
        page.click("[data-test=sign-out]")
        expect(page).to_have_url(f"{wattfare.base_url}/login")

        page.click("[data-test=forgot-password]")
        form = page.locator("[data-test=forgot-form]")
        form.locator("input[name=email]").fill(email)
        form.locator("button[type=submit]").click()
        expect(page.locator("[data-test=reset-sent]")).to_contain_text("If an account exists for that address")

        [received] = mail.wait_for(email)
        link = re.search(r"http://\S+/password/reset\?token=\S+", received.text)
        assert link is not None, received.text
        page.goto(link.group(0))
        form = page.locator("[data-test=reset-form]")
        form.locator("input[name=password]").fill(NEW_PASSWORD)
        form.locator("input[name=password_again]").fill(NEW_PASSWORD)
        form.locator("button[type=submit]").click()
        expect(page).to_have_url(f"{wattfare.base_url}/account")
        expect(page.locator("[data-test=sign-out]")).to_contain_text(email)

        # The link is spent, and the new password is the one that signs in.
        page.goto(link.group(0))
        expect(page.locator("[data-test=error]")).to_contain_text("already used or has expired")
        page.click("[data-test=sign-out]")
        sign_in(page, email, NEW_PASSWORD)
        expect(page).to_have_url(f"{wattfare.base_url}/account")
