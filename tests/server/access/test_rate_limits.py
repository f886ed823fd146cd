"""Session minting is limited to 120 a minute per app, counted in the store (so across instances)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.wattfare_server import in_process, provision
from wattfare.server.access.rate_limits import RateLimit, first_refusal
from wattfare.server.store import open_store

pytestmark = pytest.mark.anyio


async def test_the_121st_session_in_a_minute_is_rate_limited_for_that_app_only(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        for i in range(120):
            ok = await wf.client.post("/sessions", json={"appUserId": f"u{i}"}, headers=wf.auth())
            assert ok.status_code == 200, ok.text
        refused = await wf.client.post("/sessions", json={"appUserId": "one-more"}, headers=wf.auth())
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        other_app = await asyncio.to_thread(provision, tmp_path / "wattfare.db", "Other")
        other = await wf.client.post(
            "/sessions", json={"appUserId": "u1"}, headers=wf.auth(other_app.secret_keys["test"])
        )
        assert other.status_code == 200


async def test_a_fixed_window_resets_when_the_next_one_starts(database_url: str) -> None:
    store = open_store(database_url)
    await store.upgrade()
    limit = RateLimit("t", 2, timedelta(minutes=1))
    start = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
    try:
        await limit.check(store, "k", start)
        await limit.check(store, "k", start + timedelta(seconds=1))
        with pytest.raises(Exception, match="Too many requests"):
            await limit.check(store, "k", start + timedelta(seconds=2))
        await limit.check(store, "other", start)
        await limit.check(store, "k", start + timedelta(seconds=30))  # 12:01:00, a new window
    finally:
        await store.close()


async def test_limits_behind_the_first_refusal_are_not_counted(database_url: str) -> None:
    store = open_store(database_url)
    await store.upgrade()
    own = RateLimit("own", 1, timedelta(minutes=1))
    shared = RateLimit("shared", 2, timedelta(minutes=1))
    now = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
    try:
        assert await first_refusal(store, [(own, "a"), (shared, "all")], now) is None
        for _ in range(5):  # "a" is held back by its own limit and spends none of the shared one
            assert await first_refusal(store, [(own, "a"), (shared, "all")], now) == 30
        assert await first_refusal(store, [(own, "b"), (shared, "all")], now) is None
        assert await first_refusal(store, [(own, "c"), (shared, "all")], now) == 30
    finally:
        await store.close()
