"""The store's operator methods (keys' lifecycle, members' passwords, listings), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from wattfare.server.access.keys import hash_key, mint_key
from wattfare.server.store import Store, open_store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    for key_id, kind in (("key_secret", "secret"), ("key_public", "publishable")):
        await store.add_key(key_id, "app_a", "test", kind, hash_key(key_id), "hint", NOW)
    try:
        yield store
    finally:
        await store.close()


async def rotate(store: Store, old_key_id: str, expires_at: datetime) -> tuple[bool, str]:
    new = mint_key("app_a", "test", "secret")
    done = await store.rotate_secret_key(old_key_id, new.key_id, new.key_hash, new.hint, expires_at, NOW)
    return done, new.plaintext


async def test_a_rotated_key_authenticates_until_it_expires_and_the_new_one_from_the_start(store: Store) -> None:
    now = datetime.now(UTC)
    done, new = await rotate(store, "key_secret", now + timedelta(hours=1))

    assert done
    old = await store.find_secret_key(hash_key("key_secret"))
    assert old is not None
    assert old.key_id == "key_secret"
    fresh = await store.find_secret_key(hash_key(new))
    assert fresh is not None
    assert (fresh.app_id, fresh.mode) == ("app_a", "test")
    managed = await store.managed_key("key_secret")
    assert managed is not None
    assert managed.expires_at == now + timedelta(hours=1)
    assert managed.revoked_at is None


async def test_a_key_past_its_grace_no_longer_authenticates(store: Store) -> None:
    done, new = await rotate(store, "key_secret", datetime.now(UTC) - timedelta(microseconds=1))

    assert done
    assert await store.find_secret_key(hash_key("key_secret")) is None
    assert await store.find_secret_key(hash_key(new)) is not None


@pytest.mark.parametrize("key_id", ["key_public", "key_missing", "key_revoked", "key_rotated"])
async def test_only_an_unrevoked_unrotated_secret_key_rotates_and_a_refusal_writes_nothing(
    store: Store, key_id: str
) -> None:
    await store.add_key("key_revoked", "app_a", "test", "secret", hash_key("key_revoked"), "hint", NOW)
    await store.revoke_key("app_a", "key_revoked", NOW)
    await store.add_key("key_rotated", "app_a", "test", "secret", hash_key("key_rotated"), "hint", NOW)
    assert (await rotate(store, "key_rotated", NOW + timedelta(days=1)))[0]
    before = await store.managed_keys("app_a")

    done, new = await rotate(store, key_id, NOW + timedelta(days=2))

    assert not done
    assert await store.managed_key_by_hash(hash_key(new)) is None
    assert await store.managed_keys("app_a") == before


async def test_managed_keys_are_found_by_id_or_by_hash_with_their_whole_lifecycle(store: Store) -> None:
    await store.revoke_key("app_a", "key_public", NOW + timedelta(minutes=1))

    by_id = await store.managed_key("key_public")
    by_hash = await store.managed_key_by_hash(hash_key("key_public"))

    assert by_id == by_hash
    assert by_id is not None
    assert (by_id.app_id, by_id.mode, by_id.kind, by_id.hint) == ("app_a", "test", "publishable", "hint")
    assert (by_id.created_at, by_id.revoked_at, by_id.expires_at) == (NOW, NOW + timedelta(minutes=1), None)
    assert await store.managed_key("key_nope") is None
    assert [key.id for key in await store.managed_keys("app_a")] == ["key_public", "key_secret"]
    assert await store.managed_keys("app_nope") == []


async def test_a_new_password_replaces_the_old_and_ends_the_members_sessions_only(store: Store) -> None:
    ada = await store.create_member("mem_ada", "ada@example.com", "old-hash", NOW)
    bob = await store.create_member("mem_bob", "bob@example.com", "bob-hash", NOW + timedelta(seconds=1))
    assert ada is not None
    assert bob is not None
    later = datetime.now(UTC) + timedelta(days=1)
    await store.create_web_session("ada_session", ada.id, datetime.now(UTC), later)
    await store.create_web_session("bob_session", bob.id, datetime.now(UTC), later)

    assert await store.set_member_password(ada.id, "new-hash")
    assert not await store.set_member_password("mem_nobody", "x")

    credentials = await store.member_credentials("ada@example.com")
    assert credentials is not None
    assert credentials.password_hash == "new-hash"
    assert await store.web_session_member("ada_session", datetime.now(UTC)) is None
    assert await store.web_session_member("bob_session", datetime.now(UTC)) == bob
    assert await store.list_members() == [ada, bob]


async def test_every_app_is_listed_oldest_first_whoever_registered_it(store: Store) -> None:
    owner = await store.create_member("mem_ada", "ada@example.com", "hash", NOW)
    assert owner is not None
    await store.create_app("app_b", "B", 5, NOW + timedelta(seconds=1), owner.id)
    await store.set_app_origins("app_b", ["https://b.example"])

    listed = await store.list_apps()

    assert [(app.id, app.owner_member_id, app.allowed_origins) for app in listed] == [
        ("app_a", None, ()),
        ("app_b", "mem_ada", ("https://b.example",)),
    ]
