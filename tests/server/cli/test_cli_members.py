"""`wattfare members`: list members and reset a password (argon2id), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import Wattfare, one_error_line, wattfare_over
from wattfare.server.access.passwords import hash_password, verify_password
from wattfare.server.store import Store
from wattfare.server.store.account_records import Member

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD_PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple-tree-42-river"


@pytest.fixture
def wattfare(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wattfare:
    return wattfare_over(database_url, monkeypatch, tmp_path)


@pytest.fixture
def member(wattfare: Wattfare) -> Member:
    """ada@example.com, signed in from one browser."""

    async def sign_up(store: Store) -> Member:
        made = await store.create_member("mem_ada", "ada@example.com", await hash_password(OLD_PASSWORD), NOW)
        assert made is not None
        await store.create_web_session(
            "session_hash", made.id, datetime.now(UTC), datetime.now(UTC) + timedelta(days=1)
        )
        return made

    return wattfare.store(sign_up)


def password_checks(wattfare: Wattfare, *passwords: str) -> list[bool]:
    async def check(store: Store) -> list[bool]:
        found = await store.member_credentials("ada@example.com")
        assert found is not None
        assert found.password_hash.startswith("$argon2id$")
        return [await verify_password(found.password_hash, password) for password in passwords]

    return wattfare.store(check)


def signed_in(wattfare: Wattfare) -> bool:
    async def read(store: Store) -> bool:
        return await store.web_session_member("session_hash", datetime.now(UTC)) is not None

    return wattfare.store(read)


def test_members_list_shows_every_member_oldest_first(wattfare: Wattfare, member: Member) -> None:
    async def another(store: Store) -> None:
        await store.create_member("mem_bob", "bob@example.com", "x", NOW + timedelta(days=1))

    wattfare.store(another)

    lines = wattfare("members", "list").stdout.splitlines()

    assert lines[0].split() == ["ID", "EMAIL", "CREATED"]
    assert [line.split() for line in lines[1:]] == [
        ["mem_ada", "ada@example.com", "2026-11-26T12:00:00Z"],
        ["mem_bob", "bob@example.com", "2026-11-27T12:00:00Z"],
    ]


def test_members_list_says_when_there_are_none(wattfare: Wattfare) -> None:
    assert wattfare("members", "list").stdout.strip() == "No members yet."


def test_a_password_from_stdin_replaces_the_old_one_and_signs_the_member_out(
    wattfare: Wattfare, member: Member
) -> None:
    assert signed_in(wattfare)

    reset = wattfare("members", "reset-password", "Ada@Example.com", "--password-stdin", stdin=f"{NEW_PASSWORD}\n")

    assert "New password set for ada@example.com" in reset.stdout
    assert password_checks(wattfare, NEW_PASSWORD, OLD_PASSWORD, NEW_PASSWORD + "\n") == [True, False, False]
    assert not signed_in(wattfare)


def test_the_prompted_password_is_asked_twice_and_never_echoed(wattfare: Wattfare, member: Member) -> None:
    reset = wattfare("members", "reset-password", "ada@example.com", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")

    assert reset.stderr.count("New password") == 1
    assert "Repeat for confirmation" in reset.stderr
    assert NEW_PASSWORD not in reset.output
    assert password_checks(wattfare, NEW_PASSWORD) == [True]


def test_a_prompted_password_that_does_not_match_its_confirmation_is_asked_again(
    wattfare: Wattfare, member: Member
) -> None:
    typed = f"{NEW_PASSWORD}\nsomething-else-entirely\n{NEW_PASSWORD}\n{NEW_PASSWORD}\n"

    reset = wattfare("members", "reset-password", "ada@example.com", stdin=typed)

    assert "do not match" in reset.stderr
    assert password_checks(wattfare, NEW_PASSWORD) == [True]


@pytest.mark.parametrize("password", ["short", "", "x" * 1025])
def test_a_password_the_sign_up_form_would_refuse_is_a_usage_error_and_changes_nothing(
    wattfare: Wattfare, member: Member, password: str
) -> None:
    refused = wattfare("members", "reset-password", "ada@example.com", "--password-stdin", stdin=password, code=2)

    assert "Invalid value for the password: Use at" in one_error_line(refused)
    assert password_checks(wattfare, OLD_PASSWORD) == [True]
    assert signed_in(wattfare)


def test_resetting_the_password_of_an_unknown_email_is_a_one_line_error(wattfare: Wattfare, member: Member) -> None:
    refused = wattfare("members", "reset-password", "eve@example.com", "--password-stdin", stdin=NEW_PASSWORD, code=1)

    assert one_error_line(refused) == "Error: no member has the email eve@example.com (see `wattfare members list`)"
    assert password_checks(wattfare, OLD_PASSWORD) == [True]


def test_an_email_that_is_not_one_is_a_usage_error(wattfare: Wattfare) -> None:
    refused = wattfare("members", "reset-password", "not-an-email", "--password-stdin", stdin=NEW_PASSWORD, code=2)

    assert "Invalid value for 'EMAIL'" in one_error_line(refused)
