"""The provider ceiling on a real `wattfare serve` and the real `wattfare` command, against the stand-in OpenRouter.

A member who links their own OpenRouter account chooses a monthly limit the key carries (OAuth PKCE's `limit`),
and Wattfare refuses caps that would add up past it; `wattfare credits grant` raises a credit-funded member's
ceiling at once; `wattfare reconcile` compares the provider's usage of each ceiling key with the ledger.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.server.web.pages_client import PASSWORD, csrf_of
from tests.server.web.servers import clean_env, complete, rows, session_token
from tests.support.standin_upstream import MANAGEMENT_KEY, StandIn, run_standin
from tests.support.wattfare_server import ServerProcess, wattfare_process

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with run_standin(premium_delay=0) as running:
        yield running


def _env(standin: StandIn) -> dict[str, str]:
    return {
        "WATTFARE_UPSTREAM": "openai-compatible",
        "WATTFARE_UPSTREAM_URL": standin.base_url,
        "WATTFARE_UPSTREAM_KEY": "sk-or-v1-operator-key",
        "WATTFARE_OPENROUTER_URL": standin.url,
        "WATTFARE_OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
    }


def _signed_up(server: ServerProcess, email: str) -> httpx.Client:
    web = httpx.Client(base_url=server.base_url, timeout=30)
    form = web.get("/signup")
    answer = web.post("/signup", data={"csrf": csrf_of(form), "email": email, "password": PASSWORD})
    assert answer.status_code in (200, 303), answer.text
    return web


def _approve(web: httpx.Client, server: ServerProcess, user: str, cap: str) -> httpx.Response:
    token = session_token(server, user)
    consent = web.get("/connect", params={"session": token})
    return web.post(
        "/connect", data={"csrf": csrf_of(consent), "session": token, "monthlyUsd": cap, "decision": "approve"}
    )


def _account_post(web: httpx.Client, path: str, **fields: str) -> httpx.Response:
    page = web.get("/account")
    return web.post(path, data={"csrf": csrf_of(page), **fields})


def _cli(server: ServerProcess, standin: StandIn, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(WATTFARE_DATABASE_URL=f"sqlite:///{server.db_path}", **_env(standin))
    command = [sys.executable, "-m", "wattfare.server.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_linked_openrouter_key_carries_the_members_monthly_limit_and_caps_stay_under_it(
    tmp_path: Path, standin: StandIn
) -> None:
    with (
        wattfare_process(tmp_path, env=_env(standin)) as server,
        closing(_signed_up(server, "pia@example.com")) as web,
    ):
        started = _account_post(web, "/account/openrouter/link", monthlyLimitUsd="3")
        assert started.status_code == 303
        asked = parse_qs(urlsplit(started.headers["location"]).query)
        assert (asked["limit"], asked["usage_limit_type"]) == (["3"], ["monthly"])

        with httpx.Client(timeout=30) as openrouter:
            consent = openrouter.get(started.headers["location"])
            approved = openrouter.post(f"{standin.url}/auth/approve", data=dict(_HIDDEN.findall(consent.text)))
        assert approved.status_code == 302
        linked = web.get(approved.headers["location"])
        assert linked.status_code == 303
        assert linked.headers["location"] == "/account?notice=linked"
        [issued] = standin.stats()["issued"]
        assert (issued["limit"], issued["usage_limit_type"]) == ("3", "monthly")
        [(limit, ciphertext)] = rows(server.db_path, "SELECT monthly_limit, ciphertext FROM provider_keys")
        assert limit == 3_000_000_000
        assert issued["key"][12:] not in ciphertext
        assert "Never more than $3.00 a month" in web.get("/account").text

        # Caps add up to at most the limit, checked where they are set: the consent page and /account.
        over = _approve(web, server, "pia-one", "5")
        assert over.status_code == 422
        assert "at most $3.00" in over.text
        assert rows(server.db_path, "SELECT COUNT(*) FROM connections") == [(0,)]
        assert _approve(web, server, "pia-one", "2").status_code == 200
        second = _approve(web, server, "pia-two", "2")
        assert second.status_code == 422
        assert "at most $1.00" in second.text
        [(connection_id,)] = rows(server.db_path, "SELECT id FROM connections")
        assert _account_post(web, f"/account/connections/{connection_id}/cap", monthlyUsd="3").status_code == 303
        refused = _account_post(web, f"/account/connections/{connection_id}/cap", monthlyUsd="3.01")
        assert refused.status_code == 422
        assert rows(server.db_path, "SELECT cap FROM connections") == [(3_000_000_000,)]

        # The member's requests go out on their own key, which the provider holds to that limit.
        served = complete(server, "pia-one", model="standin/premium")
        assert served.status_code == 200, served.text
        assert standin.stats()["last_headers"]["authorization"] == f"Bearer {issued['key']}"
        assert issued["key"][12:] not in server.log_text()


def test_a_grant_raises_the_ceiling_at_once_and_reconcile_reports_usage_the_ledger_never_saw(
    tmp_path: Path, standin: StandIn
) -> None:
    with (
        wattfare_process(tmp_path, env=_env(standin)) as server,
        closing(_signed_up(server, "ravi@example.com")) as web,
    ):
        assert _approve(web, server, "ravi-user", "5").status_code == 200
        assert standin.stats()["managed_keys"] == []  # no credits: nothing to spend, no key yet

        granted = _cli(server, standin, "credits", "grant", "ravi@example.com", "2")
        assert granted.returncode == 0, granted.stderr
        [key] = standin.stats()["managed_keys"]
        assert (key["limit"], key["limit_reset"], key["disabled"]) == (2.0, "monthly", False)

        served = complete(server, "ravi-user", model="standin/premium")
        assert served.status_code == 200, served.text
        assert standin.stats()["last_headers"]["authorization"] == f"Bearer {key['key']}"
        agreed = _cli(server, standin, "reconcile")
        assert agreed.returncode == 0, agreed.stdout + agreed.stderr
        assert "0.000315" in agreed.stdout
        assert "DIFFERS" not in agreed.stdout

        # The key used outside Wattfare's meter (four requests the ledger never saw): reconcile says so.
        for _ in range(4):
            outside = httpx.post(
                f"{standin.base_url}/chat/completions",
                json={"model": "standin/premium", "messages": [{"role": "user", "content": "hello"}]},
                headers={"Authorization": f"Bearer {key['key']}"},
                timeout=30,
            )
            assert outside.status_code == 200
        differs = _cli(server, standin, "reconcile")
        assert differs.returncode == 1
        assert "DIFFERS" in differs.stdout
        assert "0.001260" in differs.stdout  # the difference: 4 x $0.000315

        for text in (server.log_text(), granted.stdout + granted.stderr, differs.stdout + differs.stderr):
            assert key["key"][12:] not in text
        assert not any(key["key"][12:] in repr(row) for row in rows(server.db_path, "SELECT * FROM ceiling_keys"))
