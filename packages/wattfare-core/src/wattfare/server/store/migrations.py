"""Versioned schema migrations, applied in order by `wattfare db upgrade`.

Each migration is a list of statements in portable SQL (SQLite and PostgreSQL both accept them). Money
columns are integer nano-USD (BIGINT); timestamps are ISO 8601 UTC text so both engines sort them alike.
Never edit a released migration: append a new one.
Test and live data are apart: every connection, suggested cap and ledger row belongs to one mode, so a
test key can never reach a live connection (as in a payment provider's test mode).
"""

from __future__ import annotations

from typing import Final, Literal

Dialect = Literal["sqlite", "postgresql"]

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE apps (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                default_test_cap BIGINT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                kind TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
                key_hash TEXT NOT NULL UNIQUE,
                hint TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT
            )""",
            """CREATE TABLE connections (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                app_user_id TEXT NOT NULL,
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
                cap BIGINT NOT NULL CHECK (cap >= 0),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (app_id, mode, app_user_id)
            )""",
            """CREATE TABLE counters (
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                spent BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
                reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                PRIMARY KEY (connection_id, window_key)
            )""",
            """CREATE TABLE reservations (
                id TEXT PRIMARY KEY,
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                amount BIGINT NOT NULL CHECK (amount >= 0),
                model TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
            "CREATE INDEX reservations_expiry ON reservations (expires_at)",
            """CREATE TABLE ledger (
                seq INTEGER PRIMARY KEY,
                request_id TEXT NOT NULL UNIQUE,
                connection_id TEXT NOT NULL REFERENCES connections(id),
                app_id TEXT NOT NULL,
                mode TEXT NOT NULL,
                app_user_id TEXT NOT NULL,
                window_key TEXT NOT NULL,
                kind TEXT NOT NULL,
                model TEXT NOT NULL,
                amount BIGINT NOT NULL CHECK (amount >= 0),
                absorbed BIGINT NOT NULL DEFAULT 0,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX ledger_by_connection ON ledger (connection_id, window_key)",
            "CREATE INDEX ledger_by_app_time ON ledger (app_id, mode, created_at)",
            """CREATE TABLE requested_caps (
                app_id TEXT NOT NULL,
                mode TEXT NOT NULL,
                app_user_id TEXT NOT NULL,
                cap BIGINT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (app_id, mode, app_user_id)
            )""",
            """CREATE TABLE server_secrets (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
    ),
    (
        2,
        (
            """CREATE TABLE rate_counts (
                bucket TEXT NOT NULL,
                window_start TEXT NOT NULL,
                hits INTEGER NOT NULL,
                PRIMARY KEY (bucket, window_start)
            )""",
            """CREATE TABLE spent_tokens (
                token_id TEXT PRIMARY KEY,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
)


# The few spellings the two engines disagree on, translated from the SQLite form.
_POSTGRES_SPELLINGS: Final[tuple[tuple[str, str], ...]] = (("seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY"),)


def statements_for(version: int, dialect: Dialect) -> tuple[str, ...]:
    """The statements of one migration, as the given engine spells them."""
    statements = next(s for v, s in MIGRATIONS if v == version)
    if dialect == "sqlite":
        return statements
    translated: list[str] = []
    for statement in statements:
        for sqlite_form, postgres_form in _POSTGRES_SPELLINGS:
            statement = statement.replace(sqlite_form, postgres_form)
        translated.append(statement)
    return tuple(translated)
