"""Members and the forms of every page: passwords, sessions, CSRF, framing, consent tokens (in-process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.server.web.pages_client import PUBLIC_URL, Pages, approve, csrf_of, pages, sign_up
from wattfare.server.access.session_tokens import SessionClaims, mint_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wattfare.db'}"


def session_cookie(response: httpx.Response) -> str | None:
    """The `Set-Cookie` header that sets the session, if any."""
    return next(
        (value for value in response.headers.get_list("set-cookie") if value.startswith("wattfare_session=")), None
    )


async def test_signing_up_keeps_an_argon2id_hash_and_an_httponly_samesite_session(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        answer = await sign_up(browser, "  Ada@Example.COM ")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account"
        cookie = session_cookie(answer)
        assert cookie is not None
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        credentials = await site.services.store.member_credentials("ada@example.com")
        assert credentials is not None
        assert credentials.password_hash.startswith("$argon2id$")
        assert "correct horse" not in credentials.password_hash
        # The database keeps only a hash of the session cookie.
        assert await site.services.store.web_session_member(value, datetime.now(UTC)) is None
        account = await browser.get("/account")
        assert account.status_code == 200
        assert "ada@example.com" in account.text


async def test_an_email_signs_up_once_and_a_second_sign_up_with_another_password_signs_nobody_in(
    database_url: str,
) -> None:
    async with pages(database_url) as site, site.browser() as first, site.browser() as second:
        assert (await sign_up(first, "bob@example.com")).status_code == 303
        member = await site.services.store.member_credentials("bob@example.com")
        again = await sign_up(second, "BOB@example.com", "another password entirely")
        assert again.status_code == 401
        assert "Wrong email or password." in again.text
        assert session_cookie(again) is None
        assert (await second.get("/account")).status_code == 303
        assert await site.services.store.member_credentials("bob@example.com") == member


async def test_a_short_password_is_refused(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        answer = await sign_up(browser, "carol@example.com", "short")
        assert answer.status_code == 422
        assert await site.services.store.member_credentials("carol@example.com") is None


async def sign_in(browser: httpx.AsyncClient, email: str, password: str, next_url: str = "") -> httpx.Response:
    form = await browser.get("/login")
    data = {"csrf": csrf_of(form), "email": email, "password": password, "next": next_url}
    return await browser.post("/login", data=data)


async def test_a_wrong_password_and_an_unknown_email_get_the_same_refusal_and_no_session(sqlite_url: str) -> None:
    async with pages(sqlite_url) as site, site.browser() as browser:
        await sign_up(browser, "dan@example.com")
        async with site.browser() as stranger:
            wrong = await sign_in(stranger, "dan@example.com", "not the password at all")
            unknown = await sign_in(stranger, "nobody@example.com", "not the password at all")
            for answer in (wrong, unknown):
                assert answer.status_code == 401
                assert "Wrong email or password." in answer.text
                assert session_cookie(answer) is None
            right = await sign_in(stranger, "DAN@example.com", "correct horse battery staple")
            assert right.status_code == 303
            assert session_cookie(right) is not None


async def test_wrong_guesses_hold_back_their_address_but_not_the_owner_at_another(sqlite_url: str) -> None:
    async with pages(sqlite_url) as site, site.browser("198.51.100.7") as owner:
        await sign_up(owner, "erin@example.com")
        async with site.browser("203.0.113.9") as attacker, site.browser("198.51.100.7") as owner_again:
            for _ in range(5):
                assert (await sign_in(attacker, "erin@example.com", "guess number whatever")).status_code == 401
            blocked = await sign_in(attacker, "erin@example.com", "correct horse battery staple")
            assert blocked.status_code == 429
            assert 0 < int(blocked.headers["retry-after"]) <= 60
            assert session_cookie(blocked) is None
            # The owner, at their own address in a browser that never signed in, is not locked out.
            assert (await sign_in(owner_again, "erin@example.com", "correct horse battery staple")).status_code == 303


async def test_signing_out_ends_the_session_on_the_server(sqlite_url: str) -> None:
    async with pages(sqlite_url) as site, site.browser() as browser:
        await sign_up(browser, "gina@example.com")
        stolen = browser.cookies["wattfare_session"]
        account = await browser.get("/account")
        out = await browser.post("/logout", data={"csrf": csrf_of(account)})
        assert out.status_code == 303
        async with site.browser() as thief:
            thief.cookies.set("wattfare_session", stolen)
            again = await thief.get("/account")
            assert again.status_code == 303
            assert again.headers["location"].startswith("/login")


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"])
async def test_signing_in_never_leads_off_site(sqlite_url: str, target: str) -> None:
    async with pages(sqlite_url) as site, site.browser() as browser:
        await sign_up(browser, "hank@example.com")
        async with site.browser() as again:
            answer = await sign_in(again, "hank@example.com", "correct horse battery staple", target)
            assert answer.headers["location"] == "/account"


@pytest.mark.parametrize("path", ["/login", "/signup", "/connect?session=SESSION", "/account", "/developers"])
async def test_every_page_refuses_framing_and_keeps_its_url_to_itself(sqlite_url: str, path: str) -> None:
    async with pages(sqlite_url) as site, site.browser() as browser:
        await sign_up(browser, "ivan@example.com")
        token = await site.session_token("u1")
        page = await browser.get(path.replace("SESSION", token))
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in page.text  # no inline script: the policy would block it


# -- CSRF


async def member_with_connection(site: Pages, browser: httpx.AsyncClient, email: str, user: str) -> str:
    await sign_up(browser, email)
    assert (await approve(browser, await site.session_token(user), "3")).status_code == 200
    [item] = await site.services.store.member_connections(
        (await site.services.store.member_credentials(email)).member.id,  # type: ignore[union-attr]
        datetime.now(UTC).strftime("%Y-%m"),
    )
    return item.connection.id


@pytest.mark.parametrize("token", ["missing", "forged", "another visitor's"])
async def test_a_form_without_the_visitors_csrf_token_changes_nothing(database_url: str, token: str) -> None:
    async with pages(database_url) as site, site.browser() as browser, site.browser() as other:
        connection_id = await member_with_connection(site, browser, "judy@example.com", "judy-user")
        fresh = await site.session_token("judy-second")
        chosen = {
            "missing": None,
            "forged": "0" * 64,
            "another visitor's": csrf_of(await other.get("/login")),
        }[token]
        posts = {
            f"/account/connections/{connection_id}/revoke": {},
            f"/account/connections/{connection_id}/cap": {"monthlyUsd": "100"},
            "/connect": {"session": fresh, "monthlyUsd": "9", "decision": "approve"},
            "/signup": {"email": "mallory@example.com", "password": "correct horse battery staple"},
            "/logout": {},
        }
        for path, fields in posts.items():
            data = fields | ({"csrf": chosen} if chosen is not None else {})
            refused = await browser.post(path, data=data)
            assert refused.status_code == 403, (path, refused.text)
            assert "nothing was changed" in refused.text
        status = await site.status("judy-user")
        assert status["connected"] is True
        assert status["limits"] == {"monthlyUsd": 3}
        assert (await site.status("judy-second"))["connected"] is False
        assert await site.services.store.member_credentials("mallory@example.com") is None
        assert (await browser.get("/account")).status_code == 200  # still signed in


async def test_a_form_posted_from_another_origin_changes_nothing(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        connection_id = await member_with_connection(site, browser, "kim@example.com", "kim-user")
        account = await browser.get("/account")
        refused = await browser.post(
            f"/account/connections/{connection_id}/revoke",
            data={"csrf": csrf_of(account)},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403
        assert (await site.status("kim-user"))["connected"] is True
        allowed = await browser.post(
            f"/account/connections/{connection_id}/revoke",
            data={"csrf": csrf_of(account)},
            headers={"Origin": PUBLIC_URL},
        )
        assert allowed.status_code == 303
        assert (await site.status("kim-user"))["connected"] is False


# -- consent tokens


async def test_a_session_token_approves_once(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "leo@example.com")
        token = await site.session_token("leo-user")
        consent = await browser.get("/connect", params={"session": token})
        first = await browser.post(
            "/connect", data={"csrf": csrf_of(consent), "session": token, "monthlyUsd": "3", "decision": "approve"}
        )
        assert first.status_code == 200
        assert "is connected" in first.text
        replay = await browser.post(
            "/connect", data={"csrf": csrf_of(consent), "session": token, "monthlyUsd": "900", "decision": "approve"}
        )
        assert replay.status_code == 409
        assert (await site.status("leo-user"))["limits"] == {"monthlyUsd": 3}


async def test_an_expired_or_forged_session_token_is_refused_and_changes_nothing(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "mia@example.com")
        expired_at = int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())
        claims = SessionClaims(site.app.app.id, "mia-user", "live", None, expired_at, "jti-old")
        expired = mint_session(site.services.signing_key, claims)
        future = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
        forged = mint_session(
            b"not the server's key", SessionClaims(site.app.app.id, "mia-user", "live", None, future, "j")
        )
        account = await browser.get("/account")
        for token, reason in ((expired, "expired"), (forged, "not valid")):
            page = await browser.get("/connect", params={"session": token})
            assert page.status_code == 400
            assert reason in page.text
            data = {"csrf": csrf_of(account), "session": token, "monthlyUsd": "5", "decision": "approve"}
            assert (await browser.post("/connect", data=data)).status_code == 400
        assert (await site.status("mia-user"))["connected"] is False


async def test_live_approval_needs_a_signed_in_member_while_test_mode_needs_none(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        live, test = await site.session_token("ned-user"), await site.session_token("ned-user", "test")
        consent = await browser.get("/connect", params={"session": live})
        assert 'data-test="sign-up-form"' in consent.text
        assert 'data-test="consent-form"' not in consent.text
        data = {"csrf": csrf_of(consent), "session": live, "monthlyUsd": "5", "decision": "approve"}
        assert (await browser.post("/connect", data=data)).status_code == 401
        assert (await site.status("ned-user"))["connected"] is False
        assert (await approve(browser, test, "4")).status_code == 200
        assert (await site.status("ned-user", "test"))["limits"] == {"monthlyUsd": 4}


async def test_denying_changes_nothing_and_reports_not_connected(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "olga@example.com")
        token = await site.session_token("olga-user")
        consent = await browser.get("/connect", params={"session": token})
        denied = await browser.post(
            "/connect", data={"csrf": csrf_of(consent), "session": token, "monthlyUsd": "5", "decision": "deny"}
        )
        assert denied.status_code == 200
        assert '"result": "denied"' in denied.text or '"result":"denied"' in denied.text
        assert (await site.status("olga-user"))["connected"] is False


@pytest.mark.parametrize("cap", ["", "-1", "ten", "1e400", "1000001", "NaN"])
async def test_a_bad_cap_is_refused_without_spending_the_token(sqlite_url: str, cap: str) -> None:
    async with pages(sqlite_url) as site, site.browser() as browser:
        await sign_up(browser, "pat@example.com")
        token = await site.session_token("pat-user")
        assert (await approve(browser, token, cap)).status_code == 422
        assert (await approve(browser, token, "2.5")).status_code == 200
        assert (await site.status("pat-user"))["limits"] == {"monthlyUsd": 2.5}
