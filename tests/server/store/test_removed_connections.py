"""A member removes a revoked app from their /account list; approving the app again brings it back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from wattfare.server.store import Store, open_store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    for member in ("mem_1", "mem_2"):
        assert await store.create_member(member, f"{member}@example.com", "not-a-real-hash", NOW) is not None
    try:
        yield store
    finally:
        await store.close()


async def listed(store: Store, member_id: str) -> list[tuple[str, str]]:
    return [(m.connection.id, m.connection.state) for m in await store.member_connections(member_id, WINDOW)]


async def test_only_the_members_own_revoked_connection_can_be_removed_and_approval_brings_it_back(
    store: Store,
) -> None:
    await store.approve_member_connection("c1", "app_a", "u1", "live", 500, "mem_1", NOW)
    assert not await store.remove_member_connection("mem_1", "c1", NOW)  # active: revoke it first
    assert await store.revoke_member_connection("mem_1", "c1", NOW) is not None
    assert not await store.remove_member_connection("mem_2", "c1", NOW)  # not theirs
    assert await listed(store, "mem_1") == [("c1", "revoked")]

    assert await store.remove_member_connection("mem_1", "c1", NOW)
    assert await listed(store, "mem_1") == []
    assert not await store.remove_member_connection("mem_1", "c1", NOW)  # already removed

    await store.approve_member_connection("c1", "app_a", "u1", "live", 700, "mem_1", NOW)
    assert await listed(store, "mem_1") == [("c1", "active")]
    assert await store.revoke_member_connection("mem_1", "c1", NOW) is not None
    assert await listed(store, "mem_1") == [("c1", "revoked")]  # a later revocation is listed again
