"""Attacks from other sites, in a real Chromium: each is refused and changes nothing.

Other sites are tiny loopback servers on their own ports (distinct origins to Chromium) serving pages these
tests write; Wattfare runs as a real process. Only the "good" site's origin is registered for the app.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import approve_in_popup, sign_up
from tests.server.web.servers import rows, session_token, set_origins, status_of, wattfare_server
from tests.server.web.sites import Site, sites
from tests.support.wattfare_server import ServerProcess, provision

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture
def good_and_evil() -> Iterator[tuple[Site, Site]]:
    with sites(2) as (good, evil):
        yield good, evil


def opener_page(connect_url: str) -> str:
    return f"""<!doctype html><title>opener</title>
<script>
  window.received = [];
  addEventListener("message", function (event) {{ window.received.push({{origin: event.origin, data: event.data}}); }});
</script>
<button id="open" onclick='window.open({json.dumps(connect_url)}, "wf", "popup")'>open</button>"""


def script_page(wattfare: ServerProcess) -> str:
    return f'<!doctype html><title>app</title><script src="{wattfare.base_url}/wattfare.js"></script>'


def open_site(context: BrowserContext, origin: str) -> Page:
    page = context.new_page()
    page.goto(f"{origin}/")
    return page


def test_the_consent_result_is_posted_only_to_the_apps_registered_origins(
    tmp_path: Path, chromium: Chromium, good_and_evil: tuple[Site, Site]
) -> None:
    good_site, evil_site = good_and_evil
    with wattfare_server(tmp_path, [good_site.origin]) as wattfare:
        evil_token, good_token = session_token(wattfare, "evil-user"), session_token(wattfare, "good-user")
        browser = chromium.launch()
        evil_site.html = opener_page(f"{wattfare.base_url}/connect?session={evil_token}")
        good_site.html = opener_page(f"{wattfare.base_url}/connect?session={good_token}")

        evil = open_site(browser, evil_site.origin)
        with evil.expect_popup() as opened:
            evil.click("#open")
        popup = opened.value
        sign_up(popup, "grace@example.com")
        approve_in_popup(popup)
        good = open_site(browser, good_site.origin)
        with good.expect_popup() as opened:
            good.click("#open")
        approve_in_popup(opened.value)  # already signed in: straight to the consent form

        good.wait_for_function("window.received.length > 0")
        [message] = good.evaluate("window.received")
        assert message["origin"] == wattfare.base_url
        assert message["data"]["result"] == "approved"
        assert message["data"]["status"]["connected"] is True
        assert message["data"]["status"]["appUserId"] == "good-user"
        evil.wait_for_timeout(500)
        assert evil.evaluate("window.received") == []


def test_the_consent_page_refuses_to_be_framed(
    tmp_path: Path, chromium: Chromium, good_and_evil: tuple[Site, Site]
) -> None:
    good_site, evil_site = good_and_evil
    with wattfare_server(tmp_path, [good_site.origin]) as wattfare:
        token = session_token(wattfare, "framed-user")
        browser = chromium.launch()
        evil_site.html = f'<!doctype html><iframe id="f" src="{wattfare.base_url}/connect?session={token}"></iframe>'
        page = open_site(browser, evil_site.origin)
        page.wait_for_load_state("load")
        framed = page.frame_locator("#f")
        expect(framed.locator("body")).to_have_count(1)  # the frame loaded something: the browser's error page
        assert framed.locator("[data-test=app-name], form").count() == 0
        # The same URL at the top level shows the consent page (the test above would notice a broken page).
        direct = browser.new_page()
        direct.goto(f"{wattfare.base_url}/connect?session={token}")
        expect(direct.locator("[data-test=app-name]")).to_have_text("Test app")
        assert status_of(wattfare, "framed-user")["connected"] is False


def test_the_browser_api_answers_registered_origins_only(
    tmp_path: Path, chromium: Chromium, good_and_evil: tuple[Site, Site]
) -> None:
    good_site, evil_site = good_and_evil
    with wattfare_server(tmp_path, [good_site.origin]) as wattfare:
        token = session_token(wattfare, "cors-user", mode="test")
        publishable = wattfare.app.publishable_keys["test"]
        browser = chromium.launch()
        good_site.html = script_page(wattfare)
        evil_site.html = script_page(wattfare)
        call = """([base, key, token, action]) => {
            const wf = Wattfare.createWattfare({publishableKey: key, baseURL: base, session: () => token});
            return wf[action]().then((status) => ({status}), (error) => ({code: error.code}));
        }"""
        arguments = [wattfare.base_url, publishable, token]

        evil = open_site(browser, evil_site.origin)
        assert evil.evaluate(call, [*arguments, "connect"]) == {"code": "network"}
        assert status_of(wattfare, "cors-user", "test")["connected"] is False
        good = open_site(browser, good_site.origin)
        connected = good.evaluate(call, [*arguments, "connect"])
        assert connected["status"]["connected"] is True
        assert evil.evaluate(call, [*arguments, "disconnect"]) == {"code": "network"}
        assert evil.evaluate(call, [*arguments, "status"]) == {"code": "network"}
        assert status_of(wattfare, "cors-user", "test")["connected"] is True


def test_keys_out_of_place_and_another_apps_token_are_refused(
    tmp_path: Path, chromium: Chromium, good_and_evil: tuple[Site, Site]
) -> None:
    good_site, evil_site = good_and_evil
    with wattfare_server(tmp_path, [good_site.origin]) as wattfare:
        other = provision(wattfare.db_path, "App B")
        set_origins(wattfare.db_path, other.app.id, [evil_site.origin])
        token = session_token(wattfare, "victim", mode="test")
        browser = chromium.launch()
        good_site.html = script_page(wattfare)
        evil_site.html = script_page(wattfare)
        good, evil = open_site(browser, good_site.origin), open_site(browser, evil_site.origin)

        # A secret key never gets as far as a request: the script refuses it.
        refused = good.evaluate(
            """(key) => { try { Wattfare.createWattfare({publishableKey: key, session: () => "x.y.z"}); return null; }
                          catch (error) { return error.code; } }""",
            wattfare.app.secret_keys["test"],
        )
        assert refused == "auth"
        fetch = """([url, token, key]) => fetch(url, {method: "POST",
            headers: {authorization: "Bearer " + token, "wattfare-publishable-key": key}})
            .then((r) => r.json().then((body) => [r.status, body.error && body.error.code]))"""
        url = f"{wattfare.api_url}/connections"
        # ... and the server refuses one sent by hand, from the app's own origin.
        assert good.evaluate(fetch, [url, token, wattfare.app.secret_keys["test"]]) == [401, "auth"]
        # App B's site, with app A's session token: B's publishable key does not match the token's app ...
        assert evil.evaluate(fetch, [url, token, other.publishable_keys["test"]]) == [401, "auth"]
        # ... and with A's publishable key, B's origin is not one of A's.
        assert evil.evaluate(fetch, [url, token, wattfare.app.publishable_keys["test"]]) == [403, "auth"]
        assert status_of(wattfare, "victim", "test")["connected"] is False
        assert rows(wattfare.db_path, "SELECT COUNT(*) FROM connections") == [(0,)]
        assert rows(wattfare.db_path, "SELECT COUNT(*) FROM spent_tokens") == [(0,)]


def test_another_site_cannot_post_the_members_forms(
    tmp_path: Path, chromium: Chromium, good_and_evil: tuple[Site, Site]
) -> None:
    good_site, evil_site = good_and_evil
    with wattfare_server(tmp_path, [good_site.origin]) as wattfare:
        token = session_token(wattfare, "forms-user")
        browser = chromium.launch()
        page = browser.new_page()
        page.goto(f"{wattfare.base_url}/connect?session={token}")
        sign_up(page, "heidi@example.com")
        page.click("[data-test=approve]")
        expect(page.locator("[data-test=result]")).to_contain_text("is connected")
        [(connection_id,)] = rows(wattfare.db_path, "SELECT id FROM connections")
        evil_site.html = f"""<!doctype html><form id="f" method="post"
                action="{wattfare.base_url}/account/connections/{connection_id}/revoke"></form>
                <script>document.getElementById("f").submit();</script>"""
        attack = browser.new_page()
        with attack.expect_navigation():
            attack.goto(f"{evil_site.origin}/")
        attack.wait_for_load_state("load")
        assert attack.url.startswith(wattfare.base_url)
        expect(attack.locator("[data-test=error]")).to_contain_text("nothing was changed")
        assert status_of(wattfare, "forms-user")["connected"] is True
