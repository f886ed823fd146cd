"""Linking a member's own OpenRouter account (OAuth PKCE), in a real Chromium, against real processes.

OpenRouter's two auth endpoints are served by the stand-in on 127.0.0.1 (tests/support/standin_upstream, built
from the documented wire); the model provider is the stand-in upstream, which records the key each request carried.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import sign_up
from tests.server.web.servers import complete, rows, session_token, wattfare_server
from tests.support.standin_upstream import run_standin

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_a_linked_openrouter_key_pays_the_members_requests_until_unlinked(tmp_path: Path, chromium: Chromium) -> None:
    with run_standin() as openrouter, run_standin() as upstream:
        env = {"WATTFARE_OPENROUTER_URL": openrouter.url, "WATTFARE_UPSTREAM_URL": upstream.base_url}
        with wattfare_server(tmp_path, [], env=env) as wattfare:
            token = session_token(wattfare, "or-user")
            browser = chromium.launch()
            page = browser.new_page()
            page.goto(f"{wattfare.base_url}/connect?session={token}")
            sign_up(page, "olivia@example.com")
            page.click("[data-test=approve]")
            expect(page.locator("[data-test=result]")).to_contain_text("is connected")

            page.goto(f"{wattfare.base_url}/account")
            expect(page.locator("[data-test=openrouter-unlinked]")).to_be_visible()
            page.click("[data-test=link-openrouter]")
            page.wait_for_url(f"{openrouter.url}/auth?*")
            page.click("[data-test=authorize]")
            page.wait_for_url(f"{wattfare.base_url}/account?notice=linked")
            [key] = openrouter.stats()["keys"]
            expect(page.locator("[data-test=openrouter-linked]")).to_contain_text(key[:12])
            assert key not in page.content()  # only a hint is ever shown
            [exchange] = openrouter.stats()["exchanges"]
            assert exchange["code_challenge_method"] == "S256"
            assert 43 <= len(exchange["code_verifier"]) <= 128

            # Encrypted at rest, bound to the member.
            [(ciphertext, hint)] = rows(wattfare.db_path, "SELECT ciphertext, hint FROM provider_keys")
            assert isinstance(ciphertext, str)
            assert key not in ciphertext
            assert key[9:] not in ciphertext
            assert hint == f"{key[:12]}…{key[-3:]}"

            # The member's requests go upstream with their own key; no credits were needed.
            served = complete(wattfare, "or-user", model="standin/ok")
            assert served.status_code == 200, served.text
            assert upstream.stats()["last_headers"]["authorization"] == f"Bearer {key}"
            for status in (401, 402):
                refused = complete(wattfare, "or-user", model=f"standin/http-{status}")
                assert refused.status_code == 402
                assert refused.json()["error"]["code"] == "funding_invalid"

            page.click("[data-test=unlink-openrouter]")
            page.wait_for_url(f"{wattfare.base_url}/account?notice=unlinked")
            assert rows(wattfare.db_path, "SELECT COUNT(*) FROM provider_keys") == [(0,)]
            before = upstream.stats()["total"]
            unfunded = complete(wattfare, "or-user", model="standin/ok")
            assert unfunded.json()["error"]["code"] == "funding_invalid"  # no key and no credits: nothing is sent
            assert upstream.stats()["total"] == before


def test_an_openrouter_callback_is_single_use_and_bound_to_its_member(tmp_path: Path, chromium: Chromium) -> None:
    with (
        run_standin() as openrouter,
        wattfare_server(tmp_path, [], env={"WATTFARE_OPENROUTER_URL": openrouter.url}) as wattfare,
    ):
        browser = chromium.launch()
        page = browser.new_page()
        page.goto(f"{wattfare.base_url}/signup")
        sign_up(page, "pia@example.com")
        page.goto(f"{wattfare.base_url}/account")
        page.click("[data-test=link-openrouter]")
        page.wait_for_url(f"{openrouter.url}/auth?*")
        with page.expect_response(lambda response: "/callback/" in response.url) as callback:
            page.click("[data-test=authorize]")
        callback_url = callback.value.url
        page.wait_for_url(f"{wattfare.base_url}/account?notice=linked")
        # Replaying the callback (say, from browser history) links nothing more.
        replay = page.goto(callback_url)
        assert replay is not None
        assert replay.status == 400
        assert len(openrouter.stats()["exchanges"]) == 1

        # Pia starts linking again, but before she authorizes, the browser is signed in as someone else.
        page.goto(f"{wattfare.base_url}/account")
        page.click("[data-test=unlink-openrouter]")
        page.click("[data-test=link-openrouter]")
        page.wait_for_url(f"{openrouter.url}/auth?*")
        browser.clear_cookies()
        other = browser.new_page()
        other.goto(f"{wattfare.base_url}/signup")
        sign_up(other, "quentin@example.com")
        page.click("[data-test=authorize]")
        expect(page.locator("[data-test=error]")).to_contain_text("another Wattfare account")
        assert rows(wattfare.db_path, "SELECT COUNT(*) FROM provider_keys") == [(0,)]
