"""Under `wattfare serve`, sign-in limits count the address uvicorn gives: `X-Forwarded-For` only from a trusted proxy.

Real time runs here, so a count may straddle the turn of a minute: at most two minute windows, 10 guesses.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.server.web.pages_client import PASSWORD, csrf_of
from tests.support.wattfare_server import wattfare_process

VICTIM = "victim@example.com"


def post_form(base_url: str, path: str, email: str, password: str, forwarded_for: str) -> httpx.Response:
    """A new browser at `forwarded_for` (as the proxy in front would say) posting the sign-in or sign-up form."""
    with httpx.Client(base_url=base_url, headers={"X-Forwarded-For": forwarded_for}) as browser:
        form = browser.get(path)
        return browser.post(path, data={"csrf": csrf_of(form), "email": email, "password": password})


def test_behind_a_trusted_proxy_an_attackers_address_is_held_back_while_the_owners_signs_in(tmp_path: Path) -> None:
    with wattfare_process(tmp_path, env={"FORWARDED_ALLOW_IPS": "127.0.0.1"}) as server:
        assert post_form(server.base_url, "/signup", VICTIM, PASSWORD, "198.51.100.7").status_code == 303
        statuses = [
            post_form(server.base_url, "/login", VICTIM, f"guess {i}", "203.0.113.9").status_code for i in range(30)
        ]
        assert set(statuses) == {401, 429}
        assert statuses.count(401) <= 10
        owner = post_form(server.base_url, "/login", VICTIM, PASSWORD, "198.51.100.7")
        assert owner.status_code == 303
        assert any(value.startswith("wattfare_session=") for value in owner.headers.get_list("set-cookie"))


def test_without_a_trusted_proxy_a_forged_forwarded_for_buys_no_fresh_guesses(tmp_path: Path) -> None:
    with wattfare_process(tmp_path, env={"FORWARDED_ALLOW_IPS": "192.0.2.250"}) as server:
        assert post_form(server.base_url, "/signup", VICTIM, PASSWORD, "198.51.100.7").status_code == 303
        statuses = [
            post_form(server.base_url, "/login", VICTIM, f"guess {i}", f"203.0.113.{i + 1}").status_code
            for i in range(30)
        ]
        assert statuses.count(401) <= 10
        assert 429 in statuses
