"""The scale-out store: PostgreSQL, shared by any number of stateless Wattfare instances.

This module holds the pool, migrations, apps, keys and connections; metering (reserve, settle, the
ledger) is in `postgres_metering.py`, members and funding in `postgres_accounts.py` / `postgres_funding.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from wattfare.server.store.base import StoreUnavailableError
from wattfare.server.store.migrations import MIGRATIONS, statements_for
from wattfare.server.store.outages import postgres_outage
from wattfare.server.store.postgres_accounts import PostgresAccounts
from wattfare.server.store.postgres_funding import PostgresFunding
from wattfare.server.store.postgres_metering import PostgresMetering
from wattfare.server.store.records import (
    AppRecord,
    Connection,
    KeyRecord,
    Mode,
)
from wattfare.server.store.rows import CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.timestamps import from_text, to_text

# Serialises concurrent `upgrade()` calls of instances starting together (an arbitrary, fixed lock id).
_MIGRATION_LOCK = 0x57A77FA2E


class PostgresStore(PostgresAccounts, PostgresFunding, PostgresMetering):
    """A `Store` on PostgreSQL through an asyncpg connection pool (created on first use).

    Members and funding live in the mixins.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 5.0,
        acquire_timeout: float = 30.0,
    ) -> None:
        """Connect lazily to `dsn` (`postgresql://user@host:port/db`).

        `max_size` is per process: one event loop keeps 10 connections busy (a larger pool measured no faster
        at 96 concurrent requests), and instances x workers x `max_size` must stay under PostgreSQL's
        `max_connections` (100 by default). `timeout` bounds connecting (and, doubled, each statement), so
        an unreachable database fails fast. `acquire_timeout` bounds waiting for a free pooled connection: a
        busy pool is load, not an outage, and refusing a settle for it would leave its hold to expire at the
        full reserved amount.
        """
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._acquire_timeout = acquire_timeout
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(  # pyright: ignore[reportUnknownMemberType]
                        self._dsn,
                        min_size=self._min_size,
                        max_size=self._max_size,
                        timeout=self._timeout,
                        command_timeout=self._timeout * 2,
                    )
        return self._pool

    @asynccontextmanager
    async def _conn(self) -> AsyncGenerator[Any]:
        connecting = True
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                connecting = False
                yield conn
        except Exception as exc:
            if postgres_outage(exc, connecting=connecting):
                raise StoreUnavailableError(f"PostgreSQL is unavailable: {type(exc).__name__}") from exc
            raise

    @asynccontextmanager
    async def _tx(self) -> AsyncGenerator[Any]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def upgrade(self) -> list[int]:
        """Apply pending migrations under an advisory lock, each in its own transaction."""
        applied: list[int] = []
        async with self._tx() as db:
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
            )
        for version, _ in MIGRATIONS:
            async with self._tx() as db:
                await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                if await db.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version):
                    continue
                for statement in statements_for(version, "postgresql"):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    version,
                    to_text(datetime.now(UTC)),
                )
            applied.append(version)
        return applied

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- apps and keys
    async def create_app(self, app_id: str, name: str, default_test_cap: int, now: datetime) -> AppRecord:
        """Register an app."""
        async with self._conn() as db:
            await db.execute(
                "INSERT INTO apps (id, name, default_test_cap, created_at) VALUES ($1, $2, $3, $4)",
                app_id,
                name,
                default_test_cap,
                to_text(now),
            )
        return AppRecord(app_id, name, default_test_cap, now)

    async def get_app(self, app_id: str) -> AppRecord | None:
        """Read an app by id."""
        async with self._conn() as db:
            row = await db.fetchrow("SELECT id, name, default_test_cap, created_at FROM apps WHERE id = $1", app_id)
        return AppRecord(row[0], row[1], row[2], from_text(row[3])) if row else None

    async def add_key(
        self, key_id: str, app_id: str, mode: Mode, kind: str, key_hash: str, hint: str, now: datetime
    ) -> None:
        """Store a key by its hash."""
        async with self._conn() as db:
            await db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                key_id,
                app_id,
                mode,
                kind,
                key_hash,
                hint,
                to_text(now),
            )

    async def find_secret_key(self, key_hash: str) -> KeyRecord | None:
        """The unrevoked secret key with this hash, unless past its rotation grace, and its app."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "SELECT k.id, k.app_id, a.name, k.mode, a.default_test_cap, a.output_allowance FROM api_keys k "
                "JOIN apps a ON a.id = k.app_id "
                "WHERE k.key_hash = $1 AND k.kind = 'secret' AND k.revoked_at IS NULL "
                "AND (k.expires_at IS NULL OR k.expires_at > $2)",
                key_hash,
                to_text(datetime.now(UTC)),
            )
        return KeyRecord(row[0], row[1], row[2], row[3], row[4], row[5]) if row else None

    async def get_secret(self, name: str) -> str | None:
        """A server-wide secret."""
        async with self._conn() as db:
            return await db.fetchval("SELECT value FROM server_secrets WHERE name = $1", name)

    async def put_secret_if_absent(self, name: str, value: str) -> str:
        """Store a secret unless one exists; return the one in force."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, value
            )
            return await db.fetchval("SELECT value FROM server_secrets WHERE name = $1", name)

    # -- connections
    async def get_connection(self, app_id: str, mode: Mode, app_user_id: str) -> Connection | None:
        """The connection of this app user, in any state."""
        async with self._conn() as db:
            row = await db.fetchrow(
                f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE app_id = $1 AND mode = $2 AND app_user_id = $3",
                app_id,
                mode,
                app_user_id,
            )
        return connection_from_row(row) if row else None

    async def approve_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create or re-activate the connection with this cap."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, 'active', $5, $6, $6) "
                "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET state = 'active', cap = excluded.cap, "
                f"updated_at = excluded.updated_at RETURNING {CONNECTION_COLUMNS}",
                connection_id,
                app_id,
                app_user_id,
                mode,
                cap,
                to_text(now),
            )
        return connection_from_row(row)

    async def ensure_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create an active connection unless one exists; return the one in force."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, 'active', $5, $6, $6) ON CONFLICT (app_id, mode, app_user_id) DO NOTHING",
                connection_id,
                app_id,
                app_user_id,
                mode,
                cap,
                to_text(now),
            )
            row = await db.fetchrow(
                f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE app_id = $1 AND mode = $2 AND app_user_id = $3",
                app_id,
                mode,
                app_user_id,
            )
        return connection_from_row(row)

    async def revoke_connection(self, app_id: str, mode: Mode, app_user_id: str, now: datetime) -> Connection | None:
        """Revoke the connection; None when there is none."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "UPDATE connections SET state = 'revoked', updated_at = $1 "
                f"WHERE app_id = $2 AND mode = $3 AND app_user_id = $4 RETURNING {CONNECTION_COLUMNS}",
                to_text(now),
                app_id,
                mode,
                app_user_id,
            )
        return connection_from_row(row) if row else None

    async def connection_states(self, connection_ids: list[str]) -> dict[str, str]:
        """Current state of each listed connection."""
        if not connection_ids:
            return {}
        async with self._conn() as db:
            rows = await db.fetch("SELECT id, state FROM connections WHERE id = ANY($1::text[])", connection_ids)
        return {row[0]: row[1] for row in rows}

    async def remember_requested_cap(self, app_id: str, mode: Mode, app_user_id: str, cap: int, now: datetime) -> None:
        """Keep the cap an app last suggested for its user."""
        async with self._conn() as db:
            await db.execute(
                "INSERT INTO requested_caps (app_id, mode, app_user_id, cap, updated_at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (app_id, mode, app_user_id) "
                "DO UPDATE SET cap = excluded.cap, updated_at = excluded.updated_at",
                app_id,
                mode,
                app_user_id,
                cap,
                to_text(now),
            )

    async def requested_cap(self, app_id: str, mode: Mode, app_user_id: str) -> int | None:
        """The cap the app last suggested for this user."""
        async with self._conn() as db:
            return await db.fetchval(
                "SELECT cap FROM requested_caps WHERE app_id = $1 AND mode = $2 AND app_user_id = $3",
                app_id,
                mode,
                app_user_id,
            )

    async def spend_token(self, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a single-use token used; False on a replay."""
        async with self._tx() as db:
            await db.execute("DELETE FROM spent_tokens WHERE expires_at < $1", to_text(now))
            status = await db.execute(
                "INSERT INTO spent_tokens (token_id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                token_id,
                to_text(expires_at),
            )
        return status == "INSERT 0 1"

    async def count_hit(self, bucket: str, window_start: datetime) -> int:
        """Count one hit in a fixed rate-limit window."""
        async with self._tx() as db:
            await db.execute(
                "DELETE FROM rate_counts WHERE bucket = $1 AND window_start < $2", bucket, to_text(window_start)
            )
            return await db.fetchval(
                "INSERT INTO rate_counts (bucket, window_start, hits) VALUES ($1, $2, 1) "
                "ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counts.hits + 1 RETURNING hits",
                bucket,
                to_text(window_start),
            )

    # -- metering
