"""The WAL is folded back into the database file by the store's own thread, never by a request's COMMIT."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wattfare.server.store import open_store
from wattfare.server.store.records import NewHold, Settlement
from wattfare.server.store.sqlite import SQLiteStore, checkpoints, engine
from wattfare.server.store.sqlite.checkpoints import Checkpointer

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_commits_never_checkpoint_and_the_thread_does_it(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    try:
        await store.upgrade()
        await store.create_app("app_a", "A", 10**12, NOW)
        conn = await store.approve_connection("conn_1", "app_a", "u1", "test", 10**15, NOW)
        store._checkpointer.stop()  # type: ignore[union-attr]  # pyright: ignore[reportPrivateUsage]
        pages_before = _database_pages(path)
        for index in range(1500):  # ~20 pages per request: far past SQLite's 1,000-page autocheckpoint
            hold = NewHold(f"req_{index}", conn.id, "2026-11", 10, "m", NOW, NOW + timedelta(minutes=15))
            assert await store.try_reserve(hold)
            await store.settle(Settlement(hold.id, 5), NOW)
        # No COMMIT checkpointed: the database file is as it was and everything is still in the WAL.
        assert _database_pages(path) == pages_before
        assert Path(f"{path}-wal").stat().st_size > 16 * 1024 * 1024

        checkpointer = Checkpointer(str(path), 0.05)
        try:
            for _ in range(200):
                if _database_pages(path) > pages_before:
                    break
                await asyncio.sleep(0.05)
        finally:
            checkpointer.stop()
        assert _database_pages(path) > pages_before
    finally:
        await store.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*), sum(amount) FROM ledger").fetchone() == (1500, 7500)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        check.close()


async def test_under_sustained_writes_the_wal_is_restarted_once_past_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits back to back, as under load: the WAL never ends a PASSIVE checkpoint fully copied."""
    limit = 512 * 1024
    monkeypatch.setattr(checkpoints, "JOURNAL_SIZE_LIMIT_BYTES", limit)
    monkeypatch.setattr(engine, "JOURNAL_SIZE_LIMIT_BYTES", limit)  # the commit after a restart trims the file
    path = tmp_path / "busy.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    wal = Path(f"{path}-wal")
    try:
        await store.upgrade()
        await store.create_app("app_a", "A", 10**12, NOW)
        conn = await store.approve_connection("conn_1", "app_a", "u1", "test", 10**15, NOW)
        store._checkpointer.stop()  # type: ignore[union-attr]  # pyright: ignore[reportPrivateUsage]
        checkpointer = Checkpointer(str(path), 0.02)
        sizes: list[int] = []
        try:
            for index in range(4000):
                hold = NewHold(f"req_{index}", conn.id, "2026-11", 10, "m", NOW, NOW + timedelta(minutes=15))
                assert await store.try_reserve(hold)
                await store.settle(Settlement(hold.id, 5), NOW)
                if index % 50 == 0:
                    sizes.append(wal.stat().st_size)
        finally:
            checkpointer.stop()
        # The writes alone make ~100 MB of WAL: it went past the limit, and was restarted and trimmed back to it
        # again and again (without this thread's RESTART it only ever grew).
        assert max(sizes) > limit
        emptied = sum(later < earlier for earlier, later in itertools.pairwise(sizes))
        assert emptied >= 3, sizes
    finally:
        await store.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*), sum(amount) FROM ledger").fetchone() == (4000, 20000)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        check.close()


def _database_pages(path: Path) -> int:
    """Pages in the main database file itself (what checkpoints write), not counting the WAL."""
    return path.stat().st_size // 4096
