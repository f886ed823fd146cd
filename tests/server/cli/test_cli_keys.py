"""`wattfare keys`: create, list, revoke and rotate (with a grace period), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import SECRET_KEY, Wattfare, one_error_line, wattfare_over
from wattfare.server.access.keys import hash_key
from wattfare.server.store import Store
from wattfare.server.store.key_records import ManagedKey

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def wattfare(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wattfare:
    return wattfare_over(database_url, monkeypatch, tmp_path)


@pytest.fixture
def app_keys(wattfare: Wattfare) -> dict[str, str]:
    """A new app's id and its printed secret keys by mode."""
    created = wattfare("apps", "create", "Acme").stdout
    keys = {key[3:7]: key for key in SECRET_KEY.findall(created)}
    return keys | {"app": created.split("(", 1)[1].split(")", 1)[0]}


def managed(wattfare: Wattfare, plaintext: str) -> ManagedKey:
    async def read(store: Store) -> ManagedKey | None:
        return await store.managed_key_by_hash(hash_key(plaintext))

    found = wattfare.store(read)
    assert found is not None
    return found


def listed(wattfare: Wattfare, app_id: str) -> dict[str, list[str]]:
    lines = wattfare("keys", "list", app_id).stdout.splitlines()
    assert lines[0].split() == ["ID", "MODE", "KIND", "KEY", "CREATED", "STATE"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_keys_create_prints_a_new_whole_secret_key_that_works_beside_the_old_ones(
    wattfare: Wattfare, app_keys: dict[str, str]
) -> None:
    created = wattfare("keys", "create", app_keys["app"], "--mode", "live")

    (new,) = SECRET_KEY.findall(created.stdout)
    assert new.startswith(f"sk_live_{app_keys['app']}_")
    assert f"\n{new}\n" in created.stdout
    assert wattfare.authenticates(new)
    assert wattfare.authenticates(app_keys["live"])
    assert managed(wattfare, new).app_id == app_keys["app"]


def test_keys_list_shows_each_key_and_where_it_stands(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    wattfare("keys", "rotate", managed(wattfare, app_keys["test"]).id, "--grace", "2h")
    wattfare("keys", "revoke", managed(wattfare, app_keys["live"]).id)

    rows = listed(wattfare, app_keys["app"])

    rotated, revoked = managed(wattfare, app_keys["test"]), managed(wattfare, app_keys["live"])
    assert rotated.expires_at is not None
    assert revoked.revoked_at is not None
    assert rows[rotated.id][:2] == ["test", "secret"]
    assert rows[rotated.id][4:] == ["expires", rotated.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert rows[revoked.id][4:] == ["revoked", revoked.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert sorted(row[4] for row in rows.values()) == ["active", "active", "active", "expires", "revoked"]
    assert all(app_keys["test"] not in " ".join(row) for row in rows.values())  # hints only, never a secret


@pytest.mark.parametrize("by", ["id", "whole key"])
def test_a_revoked_key_stops_authenticating_at_once(wattfare: Wattfare, app_keys: dict[str, str], by: str) -> None:
    reference = managed(wattfare, app_keys["test"]).id if by == "id" else app_keys["test"]

    revoked = wattfare("keys", "revoke", reference)

    assert "Revoked secret key key_" in revoked.stdout
    assert not wattfare.authenticates(app_keys["test"])
    assert wattfare.authenticates(app_keys["live"])
    assert "already revoked" in one_error_line(wattfare("keys", "revoke", reference, code=1))


def test_rotation_keeps_the_old_key_working_for_the_grace_period_and_issues_a_working_new_one(
    wattfare: Wattfare, app_keys: dict[str, str]
) -> None:
    old = managed(wattfare, app_keys["test"])
    before = datetime.now(UTC)

    rotated = wattfare("keys", "rotate", old.id, "--grace", "24h")

    (new,) = SECRET_KEY.findall(rotated.stdout)
    assert new.startswith(f"sk_test_{app_keys['app']}_")
    assert wattfare.api_status(new) == 200
    assert wattfare.api_status(app_keys["test"]) == 200
    expires_at = managed(wattfare, app_keys["test"]).expires_at
    assert expires_at is not None
    assert before + timedelta(hours=24) <= expires_at <= datetime.now(UTC) + timedelta(hours=24)
    assert f"keeps working until {expires_at:%Y-%m-%dT%H:%M:%SZ}" in rotated.stdout


def test_a_rotated_key_stops_authenticating_once_its_grace_has_passed(
    wattfare: Wattfare, app_keys: dict[str, str]
) -> None:
    rotated = wattfare("keys", "rotate", app_keys["test"], "--grace", "1s")
    (new,) = SECRET_KEY.findall(rotated.stdout)
    expires_at = managed(wattfare, app_keys["test"]).expires_at
    assert expires_at is not None

    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.05)

    assert wattfare.api_status(app_keys["test"]) == 401
    assert wattfare.api_status(new) == 200


def test_a_rotation_without_grace_stops_the_old_key_at_once(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    rotated = wattfare("keys", "rotate", app_keys["live"], "--grace", "0")

    (new,) = SECRET_KEY.findall(rotated.stdout)
    assert "stopped authenticating now" in rotated.stdout
    assert not wattfare.authenticates(app_keys["live"])
    assert wattfare.authenticates(new)


def test_the_default_grace_is_24_hours_and_is_documented(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    before = datetime.now(UTC)
    wattfare("keys", "rotate", app_keys["test"])

    expires_at = managed(wattfare, app_keys["test"]).expires_at
    assert expires_at is not None
    assert before + timedelta(hours=24) <= expires_at <= datetime.now(UTC) + timedelta(hours=24)
    help_text = " ".join(wattfare("keys", "rotate", "--help").stdout.split())
    assert "(24 hours by default)" in help_text
    assert "[default: 24h]" in help_text
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "wattfare keys rotate KEY --grace 24h" in readme


def test_a_key_is_rotated_once_and_a_revoked_key_not_at_all(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    wattfare("keys", "rotate", app_keys["test"])
    again = wattfare("keys", "rotate", app_keys["test"], code=1)
    wattfare("keys", "revoke", app_keys["live"])
    revoked = wattfare("keys", "rotate", app_keys["live"], code=1)

    assert "was rotated already" in one_error_line(again)
    assert "is revoked" in one_error_line(revoked)
    assert len(listed(wattfare, app_keys["app"])) == 5  # four from `apps create`, one from the first rotation


def test_only_secret_keys_rotate(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    publishable = next(key_id for key_id, row in listed(wattfare, app_keys["app"]).items() if row[1] == "publishable")

    refused = wattfare("keys", "rotate", publishable, code=2)

    assert "only secret keys rotate" in one_error_line(refused)


@pytest.mark.parametrize(
    ("mangled", "named"),
    [
        ("sk_test_app_…abcd", "'…'"),
        ("sk_test_app_x y", "a space"),
        ("sk_test_app_xé", "'é'"),
        ("key_abc...", "'...'"),
    ],
)
@pytest.mark.parametrize("command", ["revoke", "rotate"])
def test_a_truncated_or_mistyped_key_is_refused_as_such(
    wattfare: Wattfare, app_keys: dict[str, str], command: str, mangled: str, named: str
) -> None:
    refused = wattfare("keys", command, mangled, code=2)

    line = one_error_line(refused)
    assert f"This API key looks truncated or mistyped (it contains {named})" in line
    assert "header" not in line
    assert all(wattfare.authenticates(key) for key in (app_keys["test"], app_keys["live"]))


@pytest.mark.parametrize("grace", ["3x", "-1h", "1.5h", "366d", ""])
def test_a_grace_that_is_not_a_duration_is_a_usage_error(
    wattfare: Wattfare, app_keys: dict[str, str], grace: str
) -> None:
    refused = wattfare("keys", "rotate", app_keys["test"], "--grace", grace, code=2)

    assert "Invalid value for '--grace'" in one_error_line(refused)
    assert managed(wattfare, app_keys["test"]).expires_at is None


def test_unknown_keys_and_apps_are_one_line_errors(wattfare: Wattfare, app_keys: dict[str, str]) -> None:
    whole = app_keys["test"]
    unknown_key = wattfare("keys", "revoke", whole[:-1] + ("A" if whole[-1] != "A" else "B"), code=1)
    unknown_id = wattfare("keys", "rotate", "key_nope", code=1)
    unknown_app = wattfare("keys", "create", "app_nope", code=1)
    not_a_key = wattfare("keys", "revoke", "hello", code=2)

    assert one_error_line(unknown_key) == "Error: no key matches the secret key given (see `wattfare keys list APP_ID`)"
    assert whole[:-1] not in unknown_key.output  # a secret is never echoed back
    assert "no key matches key_nope" in one_error_line(unknown_id)
    assert one_error_line(unknown_app) == "Error: no app has the id 'app_nope' (see `wattfare apps list`)"
    assert "give a key id" in one_error_line(not_a_key)
    assert "no app has the id" in one_error_line(wattfare("keys", "list", "app_nope", code=1))
