"""The grant popup, `/account`'s grants and the console's, in-process: what a person sees and what each form does.

The popup's result page is read as the app would receive it (the JSON its script posts), and every grant it
mints is then used, read or refused on the API, as an app's server would.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.server.web.pages_client import Pages, csrf_of, pages, sign_up
from wattfare.metering import usd_to_nanos
from wattfare.server.access.app_registration import register_app
from wattfare.server.store.records import Mode

pytestmark = pytest.mark.anyio

ORIGIN = "https://tool.example.com"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # before any grant: list them all
_OFFER = re.compile(r'name="offer" value="([^"]+)"')
_RESULT = re.compile(r'<script type="application/json" id="wattfare-result">(.*?)</script>', re.S)


def grant_params(site: Pages, mode: Mode = "live", /, **params: str) -> dict[str, str]:
    return {"key": site.app.publishable_keys[mode], "requests": "3", "maxUsd": "0.5"} | params


async def decide(browser: httpx.AsyncClient, popup: httpx.Response, decision: str = "approve") -> httpx.Response:
    """Press Approve or Deny on the grant popup `popup`."""
    offer = _OFFER.search(popup.text)
    assert offer is not None, popup.text
    return await browser.post("/grant", data={"csrf": csrf_of(popup), "offer": offer.group(1), "decision": decision})


def posted(result: httpx.Response) -> dict[str, Any]:
    """What the result page posts to the app's window, and to which origins."""
    found = _RESULT.search(result.text)
    assert found is not None, result.text
    return json.loads(found.group(1))


async def grant_chat(site: Pages, token: str, mode: Mode = "live") -> httpx.Response:
    async with site.browser() as server:
        return await server.post(
            "/api/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
            headers={"Authorization": f"Bearer {site.app.secret_keys[mode]}", "Wattfare-Grant": token},
        )


async def member_id(site: Pages, email: str) -> str:
    credentials = await site.services.store.member_credentials(email)
    assert credentials is not None
    return credentials.member.id


async def approved_grant(site: Pages, browser: httpx.AsyncClient, **params: str) -> str:
    popup = await browser.get("/grant", params=grant_params(site, **params))
    assert popup.status_code == 200, popup.text
    result = await decide(browser, popup)
    assert result.status_code == 200, result.text
    message = posted(result)["message"]
    assert message["result"] == "approved"
    return message["grantToken"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"requests": "0"}, "from 1 to 1,000"),
        ({"requests": "1001"}, "from 1 to 1,000"),
        ({"requests": "three"}, "from 1 to 1,000"),
        ({"requests": "-1"}, "from 1 to 1,000"),
        ({"maxUsd": "0"}, "more than $0"),
        ({"maxUsd": "ten"}, "more than $0"),
        ({"maxUsd": "1000001"}, "more than $0"),
        ({"expiresInSeconds": "59"}, "from 60 to 86,400"),
        ({"expiresInSeconds": "86401"}, "from 60 to 86,400"),
        ({"key": "sk_live_oops"}, "publishable key"),
    ],
)
async def test_a_wrong_request_gets_a_page_saying_what_is_wrong_and_mints_nothing(
    database_url: str, params: dict[str, str], words: str
) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "ann@example.com")
        page = await browser.get("/grant", params=grant_params(site, **params))
        assert page.status_code == 400
        assert page.headers["content-type"].startswith("text/html")
        assert words in page.text
        assert "Go back to the app and ask again." in page.text
        assert 'name="offer"' not in page.text
        missing = {k: v for k, v in grant_params(site).items() if k != "requests"}
        assert (await browser.get("/grant", params=missing)).status_code == 400
        unknown = await browser.get("/grant", params=grant_params(site, key="pk_live_unknown"))
        assert unknown.status_code == 404
        assert "unknown" in unknown.text
        assert await site.services.store.member_grants(await member_id(site, "ann@example.com"), _EPOCH) == []


async def test_a_live_grant_asks_a_visitor_to_sign_in_first_and_then_shows_its_terms(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        page = await browser.get("/grant", params=grant_params(site, expiresInSeconds="5400"))
        assert page.status_code == 200
        assert 'data-test="sign-up-form"' in page.text
        assert 'name="offer"' not in page.text  # nothing to approve before signing in
        next_path = re.search(r'name="next" value="([^"]+)"', page.text)
        assert next_path is not None
        assert next_path.group(1).replace("&amp;", "&").startswith("/grant?key=pk_live_")

        signed_up = await browser.post(
            "/signup",
            data={
                "csrf": csrf_of(page),
                "email": "bo@example.com",
                "password": "correct horse battery staple",
                "next": next_path.group(1).replace("&amp;", "&"),
            },
        )
        assert signed_up.status_code == 303
        popup = await browser.get(signed_up.headers["location"])
        assert 'data-test="grant-form"' in popup.text
        assert 'data-test="grant-requests">3<' in popup.text
        assert "at most $0.50 in all" in popup.text
        assert "1 hour 30 minutes after you approve" in popup.text
        assert "Test app" in popup.text
        assert "You have no funding yet" in popup.text  # the member's funding, as on /connect
        uncapped = await browser.get("/grant", params={"key": site.app.publishable_keys["live"], "requests": "1"})
        assert "no dollar cap" in uncapped.text
        assert "1 hour after you approve" in uncapped.text


async def test_approving_mints_exactly_one_grant_and_a_replayed_form_mints_no_second(database_url: str) -> None:
    async with pages(database_url, signup_credits=usd_to_nanos("1")) as site, site.browser() as browser:
        await site.services.store.set_app_origins(site.app.app.id, [ORIGIN])
        await sign_up(browser, "cy@example.com")
        popup = await browser.get("/grant", params=grant_params(site))
        result = await decide(browser, popup)
        assert result.status_code == 200
        sent = posted(result)
        assert sent["origins"] == [ORIGIN]  # the token goes to the app's registered origins only
        message = sent["message"]
        assert message["source"] == "wattfare"
        assert message["type"] == "wattfare:grant"
        assert message["result"] == "approved"
        assert message["grantToken"].startswith("wfg_")
        assert isinstance(message["expiresAt"], int)

        replayed = await decide(browser, popup)
        assert replayed.status_code == 409
        assert "already answered" in replayed.text
        grants = await site.services.store.member_grants(await member_id(site, "cy@example.com"), _EPOCH)
        assert len(grants) == 1
        assert (grants[0].requests_allowed, grants[0].max_amount, grants[0].mode) == (3, usd_to_nanos("0.5"), "live")
        assert int(grants[0].expires_at.timestamp()) == message["expiresAt"]

        answer = await grant_chat(site, message["grantToken"])
        assert answer.status_code == 200, answer.text


async def test_denying_mints_nothing_and_tells_the_app(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "di@example.com")
        popup = await browser.get("/grant", params=grant_params(site))
        result = await decide(browser, popup, "deny")
        assert result.status_code == 200
        message = posted(result)["message"]
        assert message == {
            "source": "wattfare",
            "type": "wattfare:grant",
            "result": "denied",
            "grantToken": None,
            "expiresAt": None,
        }
        assert await site.services.store.member_grants(await member_id(site, "di@example.com"), _EPOCH) == []


async def test_a_form_without_its_csrf_token_or_with_a_changed_offer_is_refused(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "ed@example.com")
        popup = await browser.get("/grant", params=grant_params(site))
        offer = _OFFER.search(popup.text)
        assert offer is not None
        no_csrf = await browser.post("/grant", data={"offer": offer.group(1), "decision": "approve"})
        assert no_csrf.status_code == 403
        payload, _, mac = offer.group(1).partition(".")
        changed = payload[:-2] + ("AA" if not payload.endswith("AA") else "BB")
        tampered = await browser.post(
            "/grant", data={"csrf": csrf_of(popup), "offer": f"{changed}.{mac}", "decision": "approve"}
        )
        assert tampered.status_code == 400
        async with site.browser() as stranger:  # another person's browser, with its own CSRF token
            await sign_up(stranger, "fay@example.com")
            page = await stranger.get("/grant", params=grant_params(site))
            theirs = await stranger.post(
                "/grant", data={"csrf": csrf_of(page), "offer": offer.group(1), "decision": "approve"}
            )
            assert theirs.status_code == 403  # the offer was made to ed, not to fay
        assert await site.services.store.member_grants(await member_id(site, "ed@example.com"), _EPOCH) == []
        assert await site.services.store.member_grants(await member_id(site, "fay@example.com"), _EPOCH) == []


async def test_a_test_key_grant_is_approved_without_an_account(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        popup = await browser.get("/grant", params=grant_params(site, "test", requests="1"))
        assert 'data-test="sign-up-form"' not in popup.text
        assert "Test mode" in popup.text
        token = posted(await decide(browser, popup))["message"]["grantToken"]
        assert (await grant_chat(site, token, "test")).status_code == 200
        used_up = await grant_chat(site, token, "test")
        assert used_up.status_code == 402
        assert used_up.json()["error"]["code"] == "grant_invalid"


async def test_the_account_lists_grants_apart_from_connected_apps_and_revokes_one_at_once(database_url: str) -> None:
    async with pages(database_url, signup_credits=usd_to_nanos("1")) as site, site.browser() as browser:
        await sign_up(browser, "gil@example.com")
        kept = await approved_grant(site, browser, requests="2")
        revoked = await approved_grant(site, browser, requests="3", maxUsd="0.005")
        assert (await grant_chat(site, kept)).status_code == 200

        account = await browser.get("/account")
        rows = re.findall(r'<tr data-test="grant" data-grant="(gr_[^"]+)"[^>]*data-state="(\w+)"', account.text)
        assert [state for _, state in rows] == ["active", "active"]
        assert "1 of 2" in account.text
        assert "0 of 3" in account.text
        assert "of $0.005" in account.text  # a cap finer than a cent, shown exactly
        assert "no dollar cap" not in account.text
        assert 'data-test="no-connections"' in account.text  # a grant's connection is not a connected app
        assert "grant:" not in account.text

        newest = rows[0][0]
        page = await browser.get("/account")
        answer = await browser.post(f"/account/grants/{newest}/revoke", data={"csrf": csrf_of(page)})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account?notice=grant-revoked"
        refused = await grant_chat(site, revoked)
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "grant_invalid"
        assert (await grant_chat(site, kept)).status_code == 200  # the other grant is untouched

        account = await browser.get("/account?notice=grant-revoked")
        assert "Grant revoked" in account.text
        states = dict(re.findall(r'data-grant="(gr_[^"]+)"[^>]*data-state="(\w+)"', account.text))
        assert states[newest] == "revoked"
        assert sorted(states.values()) == ["revoked", "used_up"]
        assert 'data-test="revoke-grant"' not in account.text  # nothing left to revoke
        again = await browser.post(f"/account/grants/{newest}/revoke", data={"csrf": csrf_of(account)})
        assert again.status_code == 404
        no_csrf = await browser.post(f"/account/grants/{rows[1][0]}/revoke", data={})
        assert no_csrf.status_code == 403


async def test_a_member_cannot_revoke_another_members_grant(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as owner, site.browser() as other:
        await sign_up(owner, "hal@example.com")
        await sign_up(other, "ivy@example.com")
        await approved_grant(site, owner)
        grant = (await site.services.store.member_grants(await member_id(site, "hal@example.com"), _EPOCH))[0]
        page = await other.get("/account")
        assert grant.id not in page.text
        answer = await other.post(f"/account/grants/{grant.id}/revoke", data={"csrf": csrf_of(page)})
        assert answer.status_code == 404
        current = await site.services.store.get_grant(grant.id)
        assert current is not None
        assert current.revoked_at is None


async def test_the_console_shows_an_apps_grants_per_mode(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "jo@example.com")
        made = await register_app(
            site.services.store, "Rewriter", usd_to_nanos("5"), owner_member_id=await member_id(site, "jo@example.com")
        )
        async with site.browser() as server:
            minted = await server.post(
                "/api/v1/grants",
                json={"requests": 2, "maxUsd": 0.25},
                headers={"Authorization": f"Bearer {made.secret_keys['test']}"},
            )
            assert minted.status_code == 201, minted.text
            token = minted.json()["grantToken"]
            used = await server.post(
                "/api/v1/chat/completions",
                json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
                headers={"Authorization": f"Bearer {made.secret_keys['test']}", "Wattfare-Grant": token},
            )
            assert used.status_code == 200, used.text
        grant_id = minted.json()["grantId"]

        page = await browser.get(f"/developers/apps/{made.app.id}?mode=test")
        assert page.status_code == 200
        row = re.search(
            rf'<tr data-test="app-grant" data-grant="{grant_id}" data-state="active">(.*?)</tr>', page.text, re.S
        )
        assert row is not None, page.text
        assert "1 of 2" in row.group(1)
        assert "of $0.25" in row.group(1)
        assert "one-time grant</span> " + grant_id in page.text  # its usage, named as the grant
        live = await browser.get(f"/developers/apps/{made.app.id}?mode=live")
        assert grant_id not in live.text
        assert 'data-test="no-app-grants"' in live.text


async def test_a_popup_left_open_past_its_ten_minutes_mints_nothing(database_url: str) -> None:
    now = [datetime.now(UTC)]
    async with pages(database_url, clock=lambda: now[0]) as site, site.browser() as browser:
        await sign_up(browser, "kim@example.com")
        popup = await browser.get("/grant", params=grant_params(site))
        now[0] += timedelta(minutes=10, seconds=1)
        late = await decide(browser, popup)
        assert late.status_code == 400
        assert "waited too long" in late.text
        assert await site.services.store.member_grants(await member_id(site, "kim@example.com"), _EPOCH) == []
        fresh = await browser.get("/grant", params=grant_params(site))
        assert (await decide(browser, fresh)).status_code == 200
