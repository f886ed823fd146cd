"""Upgrading a live database keeps the requests it holds budget for, and reads its old rows as they were.

Migration 6 renamed the table of holds (it was `reservations`) and the credit holds' key column. A deployment
upgraded while requests are in flight must still settle them: the hold, its counters and its expiry survive.
Migration 7 added what each request called (`endpoint`) to the ledger and the holds: everything before it was a
chat completion, and reads back as one. The older schemas are built here from the released migrations
themselves, so each test starts where a real deployment of that version stands.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from wattfare.server.store import open_store
from wattfare.server.store.migrations import MIGRATIONS, Dialect, statements_for
from wattfare.server.store.records import NewHold, Settlement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BEFORE_HOLDS = 5  # the last schema version whose table of holds was called `reservations`
Rows = list[tuple[str, tuple[object, ...]]]  # statements and their parameters
SEED: tuple[tuple[str, tuple[object, ...]], ...] = (
    (
        "INSERT INTO apps (id, name, default_test_cap, created_at) VALUES (?, ?, ?, ?)",
        ("app_a", "A", 10_000, "2026-11-26T12:00:00.000000Z"),
    ),
    (
        "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("c1", "app_a", "u1", "test", "active", 1000, "2026-11-26T12:00:00.000000Z", "2026-11-26T12:00:00.000000Z"),
    ),
)


def _sql(statements: Sequence[tuple[str, tuple[object, ...]]], dialect: Dialect) -> Rows:
    """The statements with PostgreSQL's numbered placeholders where the engine needs them."""
    if dialect == "sqlite":
        return list(statements)
    out: Rows = []
    for sql, params in statements:
        for n in range(1, len(params) + 1):
            sql = sql.replace("?", f"${n}", 1)
        out.append((sql, params))
    return out


def _old_database(dialect: Dialect) -> Rows:
    """Schema version 5 with one request in flight: 600 nano-USD held on a 1,000 cap."""
    schema: Rows = [("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)", ())]
    for version, _ in MIGRATIONS:
        if version <= BEFORE_HOLDS:
            schema += [(statement, ()) for statement in statements_for(version, dialect)]
            schema.append(("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, "then")))
    in_flight = (
        *SEED,
        (
            "INSERT INTO counters (connection_id, window_key, spent, reserved) VALUES (?, ?, ?, ?)",
            ("c1", "2026-11", 0, 600),
        ),
        (
            "INSERT INTO reservations (id, connection_id, window_key, amount, model, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("req_old", "c1", "2026-11", 600, "m", "2026-11-26T12:00:00.000000Z", "2026-11-26T12:15:00.000000Z"),
        ),
    )
    return _sql([*schema, *in_flight], dialect)


async def _build(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            for sql, params in _old_database("sqlite"):
                db.execute(sql, params)
        return
    db = await asyncpg.connect(database_url, timeout=10)
    try:
        for sql, params in _old_database("postgresql"):
            await db.execute(sql, *params)
    finally:
        await db.close()


async def test_a_request_in_flight_across_the_upgrade_settles_on_its_hold(database_url: str) -> None:
    await _build(database_url)
    store = open_store(database_url)
    try:
        assert await store.upgrade() == [v for v, _ in MIGRATIONS if v > BEFORE_HOLDS]
        snapshot = await store.budget("app_a", "test", "u1", "2026-11")
        assert snapshot is not None
        assert (snapshot.spent, snapshot.reserved) == (0, 600)
        # Not yet expired at NOW; listed for the sweeper once its deadline passed.
        assert [h.id for h in await store.expired_holds(NOW + timedelta(minutes=16))] == ["req_old"]
        settled = await store.settle(Settlement("req_old", 250, prompt_tokens=3, completion_tokens=4), NOW)
        assert settled is not None
        assert settled.charged == 250
        snapshot = await store.budget("app_a", "test", "u1", "2026-11")
        assert snapshot is not None
        assert (snapshot.spent, snapshot.reserved) == (250, 0)
        assert await store.settle(Settlement("req_old", 250), NOW) is None  # settled once
    finally:
        await store.close()


# -- migration 7: what each request called (`endpoint`), on the ledger and on the holds

BEFORE_ENDPOINTS = 6  # the last schema version whose ledger and holds did not say what a request called
NOW_TEXT = "2026-11-26T12:00:00.000000Z"


def _version_6_database(dialect: Dialect) -> Rows:
    """Schema version 6 with one settled chat completion in the ledger and one still in flight (400 held)."""
    schema: Rows = [("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)", ())]
    for version, _ in MIGRATIONS:
        if version <= BEFORE_ENDPOINTS:
            schema += [(statement, ()) for statement in statements_for(version, dialect)]
            schema.append(("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, "then")))
    books = (
        *SEED,
        (
            "INSERT INTO counters (connection_id, window_key, spent, reserved) VALUES (?, ?, ?, ?)",
            ("c1", "2026-11", 300, 400),
        ),
        (
            "INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, "
            "amount, absorbed, prompt_tokens, completion_tokens, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("req_before", "c1", "app_a", "test", "u1", "2026-11", "charge", "m", 300, 0, 5, 6, NOW_TEXT),
        ),
        (
            "INSERT INTO holds (id, connection_id, window_key, amount, model, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("req_flying", "c1", "2026-11", 400, "m", NOW_TEXT, "2026-11-26T12:15:00.000000Z"),
        ),
    )
    return _sql([*schema, *books], dialect)


async def _build_version_6(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            for sql, params in _version_6_database("sqlite"):
                db.execute(sql, params)
        return
    db = await asyncpg.connect(database_url, timeout=10)
    try:
        for sql, params in _version_6_database("postgresql"):
            await db.execute(sql, *params)
    finally:
        await db.close()


async def test_rows_and_holds_from_before_embeddings_read_back_as_chat_completions(database_url: str) -> None:
    await _build_version_6(database_url)
    store = open_store(database_url)
    try:
        assert await store.upgrade() == [v for v, _ in MIGRATIONS if v > BEFORE_ENDPOINTS]
        period = (NOW - timedelta(days=1), NOW + timedelta(days=1))
        [before] = await store.usage("app_a", "test", None, *period)
        assert (before.model, before.endpoint, before.cost) == ("m", "chat.completions", 300)
        # The hold in flight across the upgrade was a chat completion's: its settlement is booked as one.
        settled = await store.settle(Settlement("req_flying", 100, prompt_tokens=7), NOW)
        assert settled is not None
        [after] = await store.usage("app_a", "test", None, *period)
        assert (after.requests, after.endpoint, after.cost) == (2, "chat.completions", 400)
        # And the new column takes the new kind, beside the old rows.
        hold = NewHold("req_embed", "c1", "2026-11", 50, "e", NOW, NOW + timedelta(minutes=15), endpoint="embeddings")
        assert await store.try_reserve(hold)
        assert await store.settle(Settlement("req_embed", 20, prompt_tokens=20), NOW) is not None
        rows = {row.endpoint: row for row in await store.usage("app_a", "test", None, *period)}
        assert (rows["embeddings"].model, rows["embeddings"].cost) == ("e", 20)
        assert rows["chat.completions"].cost == 400
    finally:
        await store.close()
