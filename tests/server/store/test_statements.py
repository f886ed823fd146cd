"""Every statement is written once with `?` placeholders; both engines must accept its spelling.

The contract tests run most statements; this compiles every one of them against the real schema, so a
statement only a rare path runs (or a per-dialect spelling) cannot be wrong on one engine unnoticed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3

import asyncpg
import pytest

from wattfare.server.store import open_store, sql
from wattfare.server.store.sql.statement import POSTGRES_ONLY, Statement, numbered, per_dialect, portable

pytestmark = pytest.mark.anyio


def every_statement() -> dict[str, Statement]:
    found: dict[str, Statement] = {}
    for module_info in pkgutil.iter_modules(sql.__path__):
        module = importlib.import_module(f"{sql.__name__}.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Statement):
                found[f"{module_info.name}.{name}"] = value
    return found


def test_placeholders_are_numbered_in_order_for_postgres() -> None:
    statement = portable("UPDATE t SET a = a + ? WHERE id = ? AND a + ? <= 10")
    assert statement.sqlite == "UPDATE t SET a = a + ? WHERE id = ? AND a + ? <= 10"
    assert statement.postgres == "UPDATE t SET a = a + $1 WHERE id = $2 AND a + $3 <= 10"


def test_a_question_mark_inside_a_string_literal_is_not_a_placeholder() -> None:
    assert numbered("SELECT '?', 'it''s ?' FROM t WHERE a = ? AND b = '?' AND c = ?") == (
        "SELECT '?', 'it''s ?' FROM t WHERE a = $1 AND b = '?' AND c = $2"
    )


def test_a_per_dialect_statement_keeps_each_spelling() -> None:
    statement = per_dialect(sqlite="SELECT ? FROM t", postgres="SELECT ? FROM t FOR UPDATE")
    assert (statement.sqlite, statement.postgres) == ("SELECT ? FROM t", "SELECT $1 FROM t FOR UPDATE")


def test_the_statements_are_found() -> None:
    # A guard on the test itself: finding none would let the compile test below pass vacuously.
    assert len(every_statement()) > 50
    # The hot path's PostgreSQL statements (one round trip to hold, two to settle) are among them.
    assert len({id(s) for s in every_statement().values() if s.sqlite == POSTGRES_ONLY}) == 3


async def test_every_statement_compiles_on_its_engine(database_url: str) -> None:
    store = open_store(database_url)
    await store.upgrade()
    await store.close()
    statements = every_statement()
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            for name, statement in statements.items():
                if statement.sqlite == POSTGRES_ONLY:
                    with pytest.raises(sqlite3.OperationalError, match="no such function"):
                        db.execute(statement.sqlite)
                    continue
                params = [None] * statement.sqlite.count("?")
                try:
                    db.execute(f"EXPLAIN {statement.sqlite}", params)
                except sqlite3.Error as exc:
                    pytest.fail(f"{name} does not compile on SQLite: {exc}")
        finally:
            db.close()
    else:
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            for name, statement in statements.items():
                try:
                    await conn.prepare(statement.postgres)
                except asyncpg.PostgresError as exc:
                    pytest.fail(f"{name} does not compile on PostgreSQL: {exc}")
        finally:
            await conn.close()


# What would outlive a transaction on a pooled PostgreSQL connection, which the pool no longer resets on release
# (`postgres.engine._keep_session`): session settings, session advisory locks, cursors, LISTEN, prepared names.
_SESSION_COMMANDS = ("SET ", "RESET ", "LISTEN ", "DECLARE ", "PREPARE ")
_SESSION_FUNCTIONS = re.compile(r"\b(pg_advisory_lock|pg_try_advisory_lock|set_config)\s*\(", re.IGNORECASE)


def test_no_statement_leaves_session_state_on_a_pooled_connection() -> None:
    for name, statement in every_statement().items():
        for text in (statement.postgres, statement.sqlite):
            assert not text.lstrip().upper().startswith(_SESSION_COMMANDS), name
            assert _SESSION_FUNCTIONS.search(text) is None, name


def test_the_session_check_sees_what_it_looks_for() -> None:
    assert _SESSION_FUNCTIONS.search("SELECT pg_advisory_lock(1)") is not None
    assert _SESSION_FUNCTIONS.search("SELECT pg_advisory_xact_lock(1)") is None  # transaction-scoped: allowed
    assert "set search_path to x".upper().startswith(_SESSION_COMMANDS)
