"""One way to register an app: the CLI, `wattfare dev` and the console write the same rows.

The CLI once registered apps through a path that left the publishable key's browser-safe text unset, so the
console could not show the key of an app the CLI had made. Both now go through `register_app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from wattfare.server.access.app_registration import register_app
from wattfare.server.access.keys import hash_key
from wattfare.server.store import Store, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def test_an_app_made_without_an_owner_keeps_its_publishable_keys_showable(store: Store) -> None:
    made = await register_app(store, "CLI app", 5_000)
    keys = await store.app_keys(made.app.id)
    publishable = {k.mode: k.display for k in keys if k.kind == "publishable"}
    assert publishable == made.publishable_keys
    assert {k.mode: k.display for k in keys if k.kind == "secret"} == {"test": None, "live": None}
    for mode, secret in made.secret_keys.items():
        found = await store.find_secret_key(hash_key(secret))
        assert found is not None
        assert (found.app_id, found.mode) == (made.app.id, mode)
    profile = await store.app_profile(made.app.id)
    assert profile is not None
    assert profile.owner_member_id is None


async def test_an_app_registered_by_a_member_is_theirs_with_the_same_keys(store: Store) -> None:
    member = await store.create_member("mem_1", "m@example.com", "not-a-real-hash", datetime.now(UTC))
    assert member is not None
    made = await register_app(store, "Console app", 5_000, ("test",), owner_member_id=member.id)
    assert [a.id for a in await store.member_apps(member.id)] == [made.app.id]
    keys = await store.app_keys(made.app.id)
    assert sorted((k.mode, k.kind) for k in keys) == [("test", "publishable"), ("test", "secret")]
    assert [k.display for k in keys if k.kind == "publishable"] == [made.publishable_keys["test"]]
