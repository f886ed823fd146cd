"""The `wattfare` command: apps, and how every command reports a mistake (one line, click's exit statuses).

Keys are in test_cli_keys.py, members in test_cli_members.py; printing at terminal widths and `wattfare dev`
run as real processes in tests/e2e/test_cli_terminals.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import PUBLISHABLE_KEY, SECRET_KEY, Wattfare, one_error_line, wattfare_over
from wattfare.server.access.keys import hash_key
from wattfare.server.store import Store
from wattfare.server.store.account_records import AppProfile
from wattfare.server.store.migrations import MIGRATIONS


@pytest.fixture
def wattfare(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wattfare:
    return wattfare_over(database_url, monkeypatch, tmp_path)


def _apps(wattfare: Wattfare) -> list[AppProfile]:
    async def read(store: Store) -> list[AppProfile]:
        return await store.list_apps()

    return wattfare.store(read)


def test_apps_create_prints_each_key_whole_once_and_every_printed_key_works(wattfare: Wattfare) -> None:
    created = wattfare("apps", "create", "Acme", "--origin", "https://acme.example")

    secrets = SECRET_KEY.findall(created.stdout)
    publishable = PUBLISHABLE_KEY.findall(created.stdout)
    assert sorted(key[:8] for key in secrets) == ["sk_live_", "sk_test_"]
    assert sorted(key[:8] for key in publishable) == ["pk_live_", "pk_test_"]
    assert "…" not in created.stdout
    assert "not shown again" in created.stdout
    (app,) = _apps(wattfare)
    assert app.name == "Acme"
    assert app.allowed_origins == ("https://acme.example",)
    for key in secrets:
        assert wattfare.authenticates(key), key
        assert f"\n{key}\n" in created.stdout  # alone on its line: nothing to trim when copying it

    async def publishable_apps(store: Store) -> set[str | None]:
        return {
            found.app_id if (found := await store.find_publishable_key(hash_key(key))) else None for key in publishable
        }

    assert wattfare.store(publishable_apps) == {app.id}


def test_a_printed_secret_key_authenticates_against_the_api(wattfare: Wattfare) -> None:
    created = wattfare("apps", "create", "Acme")
    test_key = next(key for key in SECRET_KEY.findall(created.stdout) if key.startswith("sk_test_"))

    assert wattfare.api_status(test_key) == 200
    assert wattfare.api_status(test_key[:-1]) == 401


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there"])
def test_an_app_without_a_proper_name_is_refused_before_anything_is_written(wattfare: Wattfare, name: str) -> None:
    refused = wattfare("apps", "create", name, code=2)

    assert "Invalid value for 'NAME'" in one_error_line(refused)
    assert _apps(wattfare) == []


@pytest.mark.parametrize("cap", ["abc", "-1", "1e999", ""])
def test_a_test_cap_that_is_not_an_amount_of_dollars_is_a_usage_error(wattfare: Wattfare, cap: str) -> None:
    refused = wattfare("apps", "create", "Acme", "--test-cap-usd", cap, code=2)

    assert "Invalid value for '--test-cap-usd'" in one_error_line(refused)
    assert _apps(wattfare) == []


def test_a_test_cap_in_dollars_and_cents_is_kept_exactly(wattfare: Wattfare) -> None:
    wattfare("apps", "create", "Acme", "--test-cap-usd", "2.50")

    assert [app.default_test_cap for app in _apps(wattfare)] == [2_500_000_000]


def test_an_invalid_origin_is_a_usage_error(wattfare: Wattfare) -> None:
    refused = wattfare("apps", "create", "Acme", "--origin", "not a url", code=2)

    assert "--origin" in one_error_line(refused)
    assert _apps(wattfare) == []


def test_apps_list_shows_every_app_with_its_whole_id_oldest_first(wattfare: Wattfare) -> None:
    assert wattfare("apps", "list").stdout.strip() == "No apps yet."
    wattfare("apps", "create", "First")
    wattfare("apps", "create", "Second app", "--origin", "https://b.example")

    listed = wattfare("apps", "list").stdout.splitlines()

    first, second = _apps(wattfare)
    assert listed[0].split() == ["ID", "NAME", "OWNER", "TEST", "CAP", "CREATED", "ORIGINS"]
    assert listed[1].startswith(f"{first.id}  First ")
    assert listed[2].startswith(f"{second.id}  Second app ")
    assert listed[2].endswith("https://b.example")
    assert len(listed) == 3


def test_db_upgrade_applies_the_migrations_once(wattfare: Wattfare) -> None:
    assert f"Applied migrations {[version for version, _ in MIGRATIONS]}" in wattfare("db", "upgrade").stdout
    assert "up to date" in wattfare("db", "upgrade").stdout


def test_credits_for_an_unknown_member_are_a_one_line_error(wattfare: Wattfare) -> None:
    refused = wattfare("credits", "grant", "nobody@example.com", "5", code=1)

    assert one_error_line(refused) == "Error: no member has the email nobody@example.com (see `wattfare members list`)"


@pytest.mark.parametrize("usd", ["abc", "0", "-5"])
def test_credits_that_are_not_a_positive_amount_are_a_usage_error(wattfare: Wattfare, usd: str) -> None:
    refused = wattfare("credits", "grant", "--", "someone@example.com", usd, code=2)

    assert "Invalid value for 'USD'" in one_error_line(refused)


COMMANDS = [
    ("apps", "list"),
    ("apps", "create", "Acme"),
    ("keys", "list", "app_x"),
    ("keys", "create", "app_x"),
    ("keys", "revoke", "key_x"),
    ("keys", "rotate", "key_x"),
    ("members", "list"),
    ("credits", "grant", "a@example.com", "5"),
    ("db", "upgrade"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unsupported_database_url_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    wattfare = wattfare_over("mysql://root@127.0.0.1/wattfare", monkeypatch, tmp_path)

    refused = wattfare(*command, code=1)

    assert one_error_line(refused).startswith("Error: WATTFARE_DATABASE_URL: unsupported database URL scheme 'mysql'")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unreachable_postgresql_is_a_one_line_error_that_keeps_the_password_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    wattfare = wattfare_over("postgresql://postgres:hunter2@127.0.0.1:1/x", monkeypatch, tmp_path)

    refused = wattfare(*command, code=1)

    line = one_error_line(refused)
    assert line.startswith("Error: cannot reach the database postgresql://postgres:***@127.0.0.1:1/x: ")
    assert "hunter2" not in refused.output


def test_a_malformed_setting_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wattfare = wattfare_over(f"sqlite:///{tmp_path / 'w.db'}", monkeypatch, tmp_path)
    monkeypatch.setenv("WATTFARE_UPSTREAM", "carrier-pigeon")

    refused = wattfare("apps", "list", code=1)

    assert "WATTFARE_UPSTREAM must be" in one_error_line(refused)


def test_apps_allowance_shows_sets_and_resets_an_apps_output_allowance(wattfare: Wattfare) -> None:
    wattfare("apps", "create", "Acme")
    (app,) = _apps(wattfare)

    assert (
        "the server's default (4096 tokens, 25000 for reasoning models)" in wattfare("apps", "allowance", app.id).stdout
    )
    assert wattfare("apps", "allowance", app.id, "1,500").stdout == f"{app.id}: 1500 tokens\n"

    async def allowance(store: Store) -> int | None:
        return await store.output_allowance(app.id)

    assert wattfare.store(allowance) == 1500
    assert "server's default" in wattfare("apps", "allowance", app.id, "default").stdout
    assert wattfare.store(allowance) is None


@pytest.mark.parametrize("bad", ["0", "lots", "1000001", "2.5"])
def test_apps_allowance_refuses_what_is_not_a_number_of_tokens(wattfare: Wattfare, bad: str) -> None:
    wattfare("apps", "create", "Acme")
    (app,) = _apps(wattfare)

    refused = wattfare("apps", "allowance", app.id, bad, code=2)

    assert one_error_line(refused)
    assert "whole number of tokens" in refused.stderr


def test_apps_allowance_of_an_unknown_app_is_one_error_line(wattfare: Wattfare) -> None:
    refused = wattfare("apps", "allowance", "app_nope", "100", code=1)

    assert one_error_line(refused)
    assert "app_nope" in refused.stderr
