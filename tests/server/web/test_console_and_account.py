"""The developer console and the member's account, in a real Chromium against a real `wattfare serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import sign_up
from tests.server.web.servers import rows, session_token, status_of, wattfare_cli, wattfare_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_a_developer_registers_an_app_gets_keys_once_and_sees_usage_per_user(
    tmp_path: Path, chromium: Chromium
) -> None:
    with wattfare_server(tmp_path, []) as wattfare:
        browser = chromium.launch()
        page = browser.new_page()
        page.goto(f"{wattfare.base_url}/developers")
        sign_up(page, "dev@example.com")
        page.wait_for_url(f"{wattfare.base_url}/developers")
        form = page.locator("[data-test=register-form]")
        form.locator("input[name=name]").fill("Recipe bot")
        form.locator("textarea[name=origins]").fill("https://Recipes.example.com/\nhttp://127.0.0.1:3000")
        form.locator("button[type=submit]").click()
        secret = page.locator("[data-test=secret-test]").inner_text()
        live_secret = page.locator("[data-test=secret-live]").inner_text()
        assert secret.startswith("sk_test_")
        assert live_secret.startswith("sk_live_")
        page.click("[data-test=continue]")
        publishable = page.locator("[data-test=publishable-test]").inner_text()
        assert publishable.startswith("pk_test_")
        # Normalised as browsers send them (lower-case host, default port and slash dropped), listed sorted.
        expect(page.locator("[data-test=origins]")).to_have_value("http://127.0.0.1:3000\nhttps://recipes.example.com")
        assert secret not in page.content()  # shown once, stored hashed
        assert not any(secret in str(row) for row in rows(wattfare.db_path, "SELECT * FROM api_keys"))
        app_url = page.url

        api = httpx.Client(base_url=wattfare.api_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        for user in ("alice", "bob", "alice"):
            answer = api.post(
                "/chat/completions",
                json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Wattfare-User": user},
            )
            assert answer.status_code == 200, answer.text
        page.reload()
        usage = page.locator("[data-test=usage-row]")
        expect(usage).to_have_count(2)
        assert usage.first.inner_text().split("\t")[:2] == ["alice", "2"]

        # A new secret key, shown once; revoking it stops it at once.
        page.select_option("select[name=mode]", "test")
        page.click("[data-test=create-key]")
        second = page.locator("[data-test=secret-test]").inner_text()
        assert httpx.get(f"{wattfare.api_url}/models", headers={"Authorization": f"Bearer {second}"}).status_code == 200
        page.goto(app_url)
        page.locator("[data-test=key][data-kind=secret][data-mode=test]").last.locator("[data-test=revoke-key]").click()
        expect(page.locator("[data-test=notice]")).to_contain_text("revoked")
        refused = httpx.get(f"{wattfare.api_url}/models", headers={"Authorization": f"Bearer {second}"})
        assert refused.status_code == 401
        assert api.get("/models").status_code == 200  # the other key still works

        # Another member sees nothing of this app.
        browser.clear_cookies()
        stranger = browser.new_page()
        stranger.goto(f"{wattfare.base_url}/signup")
        sign_up(stranger, "stranger@example.com")
        visit = stranger.goto(app_url)
        assert visit is not None
        assert visit.status == 404
        assert publishable not in stranger.content()
        api.close()


def test_a_member_changes_a_cap_and_a_revocation_stops_a_stream_in_flight(tmp_path: Path, chromium: Chromium) -> None:
    with wattfare_server(tmp_path, []) as wattfare:
        token = session_token(wattfare, "streamer")
        browser = chromium.launch()
        page = browser.new_page()
        page.goto(f"{wattfare.base_url}/connect?session={token}")
        sign_up(page, "sam@example.com")
        page.click("[data-test=approve]")
        expect(page.locator("[data-test=result]")).to_contain_text("is connected")
        assert wattfare_cli(wattfare, "credits", "grant", "sam@example.com", "2").returncode == 0

        page.goto(f"{wattfare.base_url}/account")
        expect(page.locator("[data-test=credits]")).to_have_text("$2.00")
        row = page.locator("[data-test=connection]")
        row.locator("[data-test=cap]").fill("7.5")
        row.locator("[data-test=save-cap]").click()
        expect(page.locator("[data-test=notice]")).to_contain_text("Cap updated")
        assert status_of(wattfare, "streamer")["limits"] == {"monthlyUsd": 7.5}

        body = {
            "model": "openai/gpt-4o-mini",
            "stream": True,
            "max_tokens": 2000,
            "messages": [{"role": "user", "content": "[sandbox:slow] [sandbox:long] tell me everything"}],
        }
        headers = {"Authorization": f"Bearer {wattfare.app.secret_keys['live']}", "Wattfare-User": "streamer"}
        with httpx.stream("POST", f"{wattfare.api_url}/chat/completions", json=body, headers=headers, timeout=60) as s:
            assert s.status_code == 200
            events = s.iter_lines()
            for _ in range(5):
                next(events)  # the stream is flowing
            row.locator("[data-test=revoke]").click()
            revoked_at = time.monotonic()
            ending = [line for line in events if line.startswith("data: ")]
            stopped_after = time.monotonic() - revoked_at
        assert stopped_after < 1.5
        assert ending[-1] == "data: [DONE]"
        assert json.loads(ending[-2].removeprefix("data: "))["error"]["code"] == "not_connected"
        expect(page.locator("[data-test=notice]")).to_contain_text("revoked")
        # The cut stream was charged for what it used, to the cap and to the credits alike.
        spent = rows(wattfare.db_path, "SELECT spent, reserved FROM credit_accounts")
        assert spent[0][0] > 0
        assert spent[0][1] == 0
