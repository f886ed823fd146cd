"""The developer console's webhooks and the member's threshold email choice, through the pages, on both stores.

Deliveries go to a real receiver on a loopback port (`tests.support.webhook_receiver`) and are checked with
`standardwebhooks`, as an app's server would check them. The delivery loop polls once an hour here: each test
sends with `run_once`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from standardwebhooks import Webhook

from tests.server.web.pages_client import Pages, approve, csrf_of, pages, sign_up
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver
from wattfare.metering import usd_to_nanos, window_containing
from wattfare.server.access.keys import new_id

pytestmark = pytest.mark.anyio

_SECRET = re.compile(r'data-test="webhook-secret">(whsec_[^<]+)<')
_ENDPOINT = re.compile(r"/developers/apps/(app_[A-Za-z0-9]+)/webhooks/(we_[A-Za-z0-9]+)")
_APP = re.compile(r"/developers/apps/(app_[A-Za-z0-9]+)")


@dataclass
class Console:
    """A signed-in developer's browser, and their app."""

    browser: httpx.AsyncClient
    app_id: str

    @property
    def page(self) -> str:
        return f"/developers/apps/{self.app_id}"

    async def csrf(self) -> str:
        return csrf_of(await self.browser.get("/developers"))

    async def add(self, url: str, mode: str = "test", description: str = "") -> httpx.Response:
        data = {"csrf": await self.csrf(), "mode": mode, "url": url, "description": description}
        return await self.browser.post(f"{self.page}/webhooks", data=data)

    async def add_ok(self, url: str, description: str = "") -> tuple[str, str]:
        """Add a test-mode endpoint: its id, and the secret its page showed."""
        made = await self.add(url, description=description)
        assert made.status_code == 200, made.text
        secret, endpoint = _SECRET.search(made.text), _ENDPOINT.search(made.text)
        assert secret is not None, made.text
        assert endpoint is not None, made.text
        return endpoint.group(2), secret.group(1)

    async def post(self, path: str, **data: str) -> httpx.Response:
        return await self.browser.post(path, data={"csrf": await self.csrf(), **data})


async def developer(site: Pages, email: str) -> Console:
    browser = site.browser()
    await sign_up(browser, email)
    console = await browser.get("/developers")
    made = await browser.post("/developers/apps", data={"csrf": csrf_of(console), "name": "Orders", "origins": ""})
    assert made.status_code == 200, made.text
    app_id = _APP.search(made.text)
    assert app_id is not None
    return Console(browser, app_id.group(1))


async def connect_user(site: Pages, app_id: str, user: str) -> None:
    """Something happens for the app's test user: a connection is approved (`connection.approved`)."""
    services = site.services
    await services.store.approve_connection(new_id("conn"), app_id, user, "test", usd_to_nanos("5"), services.clock())


async def delivered(site: Pages, hook: WebhookReceiver, count: int) -> list[tuple[dict[str, str], bytes]]:
    """Run the delivery loop once; the receiver then has `count` requests: each one's headers and body."""
    await site.services.deliverer.run_once()
    received = [(arrival.headers, arrival.body) for arrival in hook.arrivals()]
    assert len(received) == count, received
    return received


@asynccontextmanager
async def site_with_receiver(database_url: str) -> AsyncIterator[tuple[Pages, WebhookReceiver]]:
    with webhook_receiver() as hook:
        async with pages(database_url, webhook_poll_seconds=3600) as site:
            yield site, hook


async def test_an_endpoints_secret_is_shown_once_and_verifies_a_real_delivery(database_url: str) -> None:
    async with site_with_receiver(database_url) as (site, hook):
        dev = await developer(site, "dev@example.com")
        endpoint_id, secret = await dev.add_ok(hook.url, description="Order sync")
        app_page = await dev.browser.get(dev.page)
        assert app_page.status_code == 200
        assert secret not in app_page.text  # shown once, on the page that made it
        assert f'data-endpoint="{endpoint_id}" data-state="enabled"' in app_page.text
        assert "Order sync" in app_page.text
        assert hook.url in app_page.text
        endpoint_page = await dev.browser.get(f"{dev.page}/webhooks/{endpoint_id}")
        assert endpoint_page.status_code == 200
        assert secret not in endpoint_page.text
        assert 'data-test="no-deliveries"' in endpoint_page.text

        await connect_user(site, dev.app_id, "user-1")
        [(headers, body)] = await delivered(site, hook, 1)
        event = Webhook(secret).verify(body, headers)
        assert event["type"] == "connection.approved"
        assert event["appId"] == dev.app_id
        assert event["mode"] == "test"
        assert event["id"] == headers["webhook-id"]
        assert event["data"]["connection"]["appUserId"] == "user-1"

        shown = (await dev.browser.get(f"{dev.page}/webhooks/{endpoint_id}")).text
        assert f'data-event="{event["id"]}" data-state="delivered"' in shown
        assert "HTTP 200" in shown
        assert "connection.approved" in shown


async def test_rotating_signs_each_delivery_with_the_new_secret_and_the_old_one(database_url: str) -> None:
    async with site_with_receiver(database_url) as (site, hook):
        dev = await developer(site, "dev@example.com")
        endpoint_id, old = await dev.add_ok(hook.url)
        rotated = await dev.post(f"{dev.page}/webhooks/{endpoint_id}/rotate")
        assert rotated.status_code == 200, rotated.text
        found = _SECRET.search(rotated.text)
        assert found is not None
        new = found.group(1)
        assert new != old
        assert "keeps working for 24 hours" in rotated.text
        assert new not in (await dev.browser.get(f"{dev.page}/webhooks/{endpoint_id}")).text

        await connect_user(site, dev.app_id, "user-1")
        [(headers, body)] = await delivered(site, hook, 1)
        signatures = headers["webhook-signature"].split(" ")
        assert len(signatures) == 2
        assert Webhook(new).verify(body, headers | {"webhook-signature": signatures[0]})
        assert Webhook(old).verify(body, headers | {"webhook-signature": signatures[1]})
        assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers)


async def test_disabling_stops_deliveries_and_resend_sends_the_same_webhook_id(database_url: str) -> None:
    async with site_with_receiver(database_url) as (site, hook):
        dev = await developer(site, "dev@example.com")
        endpoint_id, secret = await dev.add_ok(hook.url)
        endpoint_page = f"{dev.page}/webhooks/{endpoint_id}"
        await connect_user(site, dev.app_id, "user-1")
        [(first, _)] = await delivered(site, hook, 1)
        first_id = first["webhook-id"]

        resent = await dev.post(f"{endpoint_page}/deliveries/{first_id}/resend")
        assert resent.status_code == 303
        assert resent.headers["location"] == f"{endpoint_page}?notice=resent"
        received = await delivered(site, hook, 2)
        assert [headers["webhook-id"] for headers, _ in received] == [first_id, first_id]
        assert received[1][1] == received[0][1]  # the same event, byte for byte
        Webhook(secret).verify(received[1][1], received[1][0])

        disabled = await dev.post(f"{endpoint_page}/disable")
        assert disabled.status_code == 303
        assert 'data-test="webhook-state">Disabled' in (await dev.browser.get(endpoint_page)).text
        assert f'data-endpoint="{endpoint_id}" data-state="disabled"' in (await dev.browser.get(dev.page)).text
        await connect_user(site, dev.app_id, "user-2")
        await delivered(site, hook, 2)  # nothing for a disabled endpoint

        enabled = await dev.post(f"{endpoint_page}/enable")
        assert enabled.status_code == 303
        await connect_user(site, dev.app_id, "user-3")
        received = await delivered(site, hook, 3)
        event = Webhook(secret).verify(received[2][1], received[2][0])
        assert event["data"]["connection"]["appUserId"] == "user-3"  # user-2's event was never queued for it

        deleted = await dev.post(f"{endpoint_page}/delete")
        assert deleted.status_code == 303
        assert deleted.headers["location"] == f"{dev.page}?mode=test&notice=webhook-deleted"
        assert (await dev.browser.get(endpoint_page)).status_code == 404
        await connect_user(site, dev.app_id, "user-4")
        await delivered(site, hook, 3)


async def test_another_member_gets_the_same_404_on_every_webhook_route(database_url: str) -> None:
    async with site_with_receiver(database_url) as (site, hook):
        owner = await developer(site, "owner@example.com")
        endpoint_id, secret = await owner.add_ok(hook.url)
        await connect_user(site, owner.app_id, "user-1")
        [(first, _)] = await delivered(site, hook, 1)
        event_id = first["webhook-id"]
        stranger = await developer(site, "stranger@example.com")
        endpoint = f"{owner.page}/webhooks/{endpoint_id}"

        assert (await stranger.browser.get(endpoint)).status_code == 404
        for path in (
            f"{owner.page}/webhooks",
            f"{endpoint}/rotate",
            f"{endpoint}/disable",
            f"{endpoint}/enable",
            f"{endpoint}/delete",
            f"{endpoint}/deliveries/{event_id}/resend",
        ):
            answer = await stranger.post(path, url="https://evil.example/hook", mode="test")
            assert answer.status_code == 404, path
            assert secret not in answer.text
            assert hook.url not in answer.text
        # The stranger's own app does not open the owner's endpoint either.
        mixed = f"{stranger.page}/webhooks/{endpoint_id}"
        assert (await stranger.browser.get(mixed)).status_code == 404
        assert (await stranger.post(f"{mixed}/delete")).status_code == 404

        # Unknown and hostile ids: 404 for the owner too, never a 500.
        for path in (
            f"{owner.page}/webhooks/we_unknown",
            f"{owner.page}/webhooks/%00",
            f"{owner.page}/webhooks/{'x' * 5000}",
            f"/developers/apps/%00%0d%0a/webhooks/{endpoint_id}",
            "/developers/apps/%00",
        ):
            assert (await owner.browser.get(path)).status_code == 404, path
            assert (await owner.post(f"{path}/disable")).status_code == 404, path
        for event in ("msg_unknown", "%00", "x" * 5000):
            assert (await owner.post(f"{endpoint}/deliveries/{event}/resend")).status_code == 404, event

        # Nothing changed: still enabled, still signing with the first secret, still listed.
        assert f'data-endpoint="{endpoint_id}" data-state="enabled"' in (await owner.browser.get(owner.page)).text
        await connect_user(site, owner.app_id, "user-2")
        received = await delivered(site, hook, 2)
        Webhook(secret).verify(received[1][1], received[1][0])
        assert len(await site.services.store.webhook_endpoints(stranger.app_id, "test")) == 0


async def test_refused_endpoints_show_the_message_with_the_form_refilled(database_url: str) -> None:
    async with pages(database_url) as site:
        dev = await developer(site, "dev@example.com")
        refused = await dev.add("http://hooks.example.com/wattfare", mode="live", description="Prod")
        assert refused.status_code == 422
        assert "Live-mode endpoints must use https://" in refused.text
        assert 'value="http://hooks.example.com/wattfare"' in refused.text
        assert 'value="Prod"' in refused.text
        assert 'data-mode="live"' in refused.text
        assert 'name="mode" value="live"' in refused.text
        assert await site.services.store.webhook_endpoints(dev.app_id, "live") == []

        hostile = [
            ("https://example.com/" + "a" * 3000, "", "1 to 2048 characters"),
            ("https://example.com/\x00hook", "", "control characters"),
            ("https://example.com/\u202ehook", "", "control characters"),
            ("https://user:pw@example.com/hook", "", "no credentials"),
            ("javascript:alert(1)", "", "absolute http:// or https://"),
            ("https://example.com:99999/", "", "not a valid URL"),
            ("https://example.com/hook", "bell\x07 and \x00", "control characters"),
            ("https://example.com/hook", "d" * 201, "at most 200 characters"),
        ]
        for url, description, message in hostile:
            answer = await dev.add(url, description=description)
            assert answer.status_code == 422, (url, description)
            assert message in answer.text, (url, description)
            assert "\x00" not in answer.text
        # A mode that is neither is test mode, where http:// is allowed.
        made = await dev.add("http://127.0.0.1:9/hook", mode="production")
        assert made.status_code == 200
        assert len(await site.services.store.webhook_endpoints(dev.app_id, "test")) == 1


async def test_webhook_forms_without_the_csrf_token_are_refused(database_url: str) -> None:
    async with pages(database_url) as site:
        dev = await developer(site, "dev@example.com")
        endpoint_id, _ = await dev.add_ok("http://127.0.0.1:9/hook")
        endpoint = f"{dev.page}/webhooks/{endpoint_id}"
        for path in (
            f"{dev.page}/webhooks",
            f"{endpoint}/rotate",
            f"{endpoint}/disable",
            f"{endpoint}/delete",
            f"{endpoint}/deliveries/msg_x/resend",
        ):
            bare = await dev.browser.post(path, data={"url": "http://127.0.0.1:9/other", "mode": "test"})
            assert bare.status_code == 403, path
            forged = await dev.browser.post(path, data={"csrf": "forged", "url": "http://127.0.0.1:9/other"})
            assert forged.status_code == 403, path
        [kept] = await site.services.store.webhook_endpoints(dev.app_id, "test")
        assert (kept.id, kept.state, kept.sealed_previous_secret) == (endpoint_id, "enabled", None)


def _selected(page: str) -> list[str]:
    return re.findall(r'<option value="([a-z0-9]+)" selected>', page)


async def test_a_member_chooses_when_to_be_emailed_about_an_apps_spend(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as member, site.browser() as other:
        await sign_up(member, "ada@example.com")
        answer = await approve(member, await site.session_token("ada"))
        assert answer.status_code == 200, answer.text
        account = await member.get("/account")
        assert _selected(account.text) == ["80"]  # the default
        found = re.search(r'action="(/account/connections/conn_[A-Za-z0-9]+/alerts)"', account.text)
        assert found is not None
        action = found.group(1)
        credentials = await site.services.store.member_credentials("ada@example.com")
        assert credentials is not None

        async def stored_choice() -> int | None:
            window = window_containing(site.services.clock())
            [item] = await site.services.store.member_connections(credentials.member.id, window.key)
            return item.alert_percent

        for choice, stored in (("100", 100), ("never", None), ("80", 80), ("never", None)):
            saved = await member.post(action, data={"csrf": csrf_of(account), "percent": choice})
            assert saved.status_code == 303
            assert saved.headers["location"] == f"/account?notice=alert-{choice}"
            shown = await member.get("/account")
            assert _selected(shown.text) == [choice]
            assert "Saved: " in (await member.get(saved.headers["location"])).text
            assert await stored_choice() == stored

        for bad in ("50", "", "9" * 5000, "80%", "\x00"):
            refused = await member.post(action, data={"csrf": csrf_of(account), "percent": bad})
            assert refused.status_code == 303
            assert refused.headers["location"] == "/account?notice=bad-alert"
        assert _selected((await member.get("/account")).text) == ["never"]  # unchanged
        assert await stored_choice() is None

        unknown = await member.post(
            "/account/connections/conn_nope/alerts", data={"csrf": csrf_of(account), "percent": "100"}
        )
        assert unknown.status_code == 404
        # A NUL in the URL is refused before any store sees it (PostgreSQL would answer it with a 500).
        for kind, action_name in (
            ("connections", "alerts"),
            ("connections", "cap"),
            ("connections", "revoke"),
            ("connections", "remove"),
            ("grants", "revoke"),
        ):
            data = {"csrf": csrf_of(account), "percent": "100", "monthlyUsd": "5"}
            hostile = await member.post(f"/account/{kind}/%00/{action_name}", data=data)
            assert hostile.status_code == 404, (kind, action_name)
        await sign_up(other, "eve@example.com")
        theirs = await other.get("/account")
        foreign = await other.post(action, data={"csrf": csrf_of(theirs), "percent": "100"})
        assert foreign.status_code == 404
        no_token = await member.post(action, data={"percent": "100"})
        assert no_token.status_code == 403
        assert _selected((await member.get("/account")).text) == ["never"]
        assert await stored_choice() is None
