"""The ledger's reads of one user stay a range of that user's rows, however big the ledger grows.

`GET /usage?appUserId=` and the member's daily chart on /account read one user's month. Migration 13 gives them
`ledger_by_user_time`; without it each read filtered the whole app's month, or the connection's whole history
(benchmarks/ledger_scale.py measures both at 10 million rows). SQLite's planner has no statistics here (the
server never runs ANALYZE), so its plan is the same on an empty file as on a big one and can be checked as is.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from wattfare.server.store import open_store
from wattfare.server.store.sql import ledger, member_connections
from wattfare.server.store.sql.statement import Statement

pytestmark = pytest.mark.anyio
USER_READS: dict[str, Statement] = {
    "usage of one user": ledger._USAGE_OF_ONE_USER,  # pyright: ignore[reportPrivateUsage]
    "a member's daily spend": member_connections._DAILY_SPEND,  # pyright: ignore[reportPrivateUsage]
}


async def _ledger_indexes(database_url: str) -> set[str]:
    store = open_store(database_url)
    await store.upgrade()
    await store.close()
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger'")
            return {row[0] for row in rows}
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return {row[0] for row in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'ledger'")}
    finally:
        await conn.close()


async def test_the_ledger_has_an_index_of_each_users_rows_in_time_order(database_url: str) -> None:
    assert {"ledger_by_user_time", "ledger_by_app_time", "ledger_by_connection"} <= await _ledger_indexes(database_url)


@pytest.mark.parametrize("read", list(USER_READS))
async def test_a_read_of_one_users_month_searches_that_users_rows_by_time(tmp_path: Path, read: str) -> None:
    database = tmp_path / "wattfare.db"
    await _ledger_indexes(f"sqlite:///{database}")
    statement = USER_READS[read]
    with sqlite3.connect(database) as db:
        plan = [
            row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement.sqlite}", [None] * statement.sqlite.count("?"))
        ]
    searches = [step for step in plan if "ledger" in step and "USING INDEX" in step]
    assert searches == [
        "SEARCH "
        + ("l" if "ledger l" in statement.sqlite else "ledger")
        + " USING INDEX ledger_by_user_time (app_id=? AND mode=? AND app_user_id=? AND created_at>? AND created_at<?)"
    ], plan
