"""The scale-out store: PostgreSQL, shared by any number of stateless Wattfare instances.

Reserve and settle are each one transaction whose guard is a single conditional UPDATE on the counter
row. Under READ COMMITTED, PostgreSQL re-checks an UPDATE's WHERE clause against the newest row version
after taking the row lock, so two instances racing for the last dollar cannot both pass the check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from wattfare.server.store.base import StoreUnavailableError
from wattfare.server.store.charging import settlement_charge
from wattfare.server.store.migrations import MIGRATIONS, statements_for
from wattfare.server.store.postgres_accounts import PostgresAccounts
from wattfare.server.store.postgres_funding import PostgresFunding
from wattfare.server.store.records import (
    AppRecord,
    BudgetSnapshot,
    Connection,
    KeyRecord,
    Mode,
    NewReservation,
    Settled,
    Settlement,
    UsageRow,
)
from wattfare.server.store.rows import CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.timestamps import from_text, to_text

# Errors that mean "the database is not there", as opposed to a bug in a statement. Besides a lost
# connection: the server starting up or shutting down (57P03, 57P01, 57P02) and out of connection slots
# (53300, e.g. instances x workers x pool size > max_connections) are outages too, answered with 503.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Serialises concurrent `upgrade()` calls of instances starting together (an arbitrary, fixed lock id).
_MIGRATION_LOCK = 0x57A77FA2E


class PostgresStore(PostgresAccounts, PostgresFunding):
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
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"PostgreSQL is unavailable: {type(exc).__name__}") from exc

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
        """The unrevoked secret key with this hash, and its app."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "SELECT k.id, k.app_id, a.name, k.mode, a.default_test_cap FROM api_keys k "
                "JOIN apps a ON a.id = k.app_id "
                "WHERE k.key_hash = $1 AND k.kind = 'secret' AND k.revoked_at IS NULL",
                key_hash,
            )
        return KeyRecord(row[0], row[1], row[2], row[3], row[4]) if row else None

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
    async def budget(self, app_id: str, mode: Mode, app_user_id: str, window_key: str) -> BudgetSnapshot | None:
        """The connection and its counters for the window, in one statement."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "SELECT c.id, c.app_id, c.app_user_id, c.mode, c.state, c.cap, c.created_at, c.updated_at, "
                "COALESCE(k.spent, 0), COALESCE(k.reserved, 0) FROM connections c "
                "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = $1 "
                "WHERE c.app_id = $2 AND c.mode = $3 AND c.app_user_id = $4",
                window_key,
                app_id,
                mode,
                app_user_id,
            )
        if row is None:
            return None
        return BudgetSnapshot(connection_from_row(row), window_key, row[8], row[9])

    async def try_reserve(self, reservation: NewReservation) -> bool:
        """Hold the amount iff the connection is active and it fits under the cap: one conditional UPDATE."""
        r = reservation
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO counters (connection_id, window_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                r.connection_id,
                r.window_key,
            )
            status = await db.execute(
                "UPDATE counters SET reserved = reserved + $1 WHERE connection_id = $2 AND window_key = $3 "
                "AND spent + reserved + $1 <= (SELECT cap FROM connections WHERE id = $2 AND state = 'active')",
                r.amount,
                r.connection_id,
                r.window_key,
            )
            held = status == "UPDATE 1"
            if held:
                await db.execute(
                    "INSERT INTO reservations (id, connection_id, window_key, amount, model, created_at, expires_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    r.id,
                    r.connection_id,
                    r.window_key,
                    r.amount,
                    r.model,
                    to_text(r.created_at),
                    to_text(r.expires_at),
                )
        return held

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Swap a reservation for its charge and append the ledger entry, in one transaction."""
        s = settlement
        async with self._tx() as db:
            held = await db.fetchrow(
                "DELETE FROM reservations WHERE id = $1 RETURNING connection_id, window_key, amount, model",
                s.reservation_id,
            )
            if held is None:
                return None
            connection_id, window_key, amount, model = held[0], held[1], held[2], held[3]
            owner = await db.fetchrow(
                "SELECT app_id, mode, app_user_id, cap FROM connections WHERE id = $1", connection_id
            )
            spent_before = await db.fetchval(
                "SELECT spent FROM counters WHERE connection_id = $1 AND window_key = $2 FOR UPDATE",
                connection_id,
                window_key,
            )
            charged, absorbed = settlement_charge(s, amount, owner[3], spent_before)
            counters = await db.fetchrow(
                "UPDATE counters SET reserved = reserved - $1, spent = spent + $2 "
                "WHERE connection_id = $3 AND window_key = $4 RETURNING spent, reserved",
                amount,
                charged,
                connection_id,
                window_key,
            )
            await db.execute(
                "INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, "
                "amount, absorbed, prompt_tokens, completion_tokens, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                s.reservation_id,
                connection_id,
                owner[0],
                owner[1],
                owner[2],
                window_key,
                s.kind,
                model,
                charged,
                absorbed,
                s.prompt_tokens,
                s.completion_tokens,
                to_text(now),
            )
            # Same transaction: a credit-funded request's credits are charged exactly when its counters are.
            await self._settle_credit_hold(db, s.reservation_id, charged, now)
        return Settled(connection_id, window_key, counters[0], counters[1], owner[3], charged)

    async def renew_reservations(self, reservation_ids: list[str], expires_at: datetime) -> int:
        """Push back the deadline of holds still in flight."""
        if not reservation_ids:
            return 0
        async with self._conn() as db:
            status = await db.execute(
                "UPDATE reservations SET expires_at = $1 WHERE id = ANY($2::text[])",
                to_text(expires_at),
                reservation_ids,
            )
        return int(status.split()[-1])

    async def expired_reservations(self, now: datetime, limit: int = 100) -> list[NewReservation]:
        """Reservations past their deadline."""
        async with self._conn() as db:
            rows = await db.fetch(
                "SELECT id, connection_id, window_key, amount, model, created_at, expires_at FROM reservations "
                "WHERE expires_at < $1 ORDER BY expires_at LIMIT $2",
                to_text(now),
                limit,
            )
        return [NewReservation(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6])) for r in rows]

    async def usage(
        self, app_id: str, mode: Mode, app_user_id: str | None, start: datetime, end: datetime
    ) -> list[UsageRow]:
        """Ledger totals per app user and model in [start, end)."""
        sql = (
            "SELECT app_user_id, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(amount) "
            "FROM ledger WHERE app_id = $1 AND mode = $2 AND created_at >= $3 AND created_at < $4"
        )
        params: list[Any] = [app_id, mode, to_text(start), to_text(end)]
        if app_user_id is not None:
            sql += " AND app_user_id = $5"
            params.append(app_user_id)
        sql += " GROUP BY app_user_id, model ORDER BY app_user_id, model"
        async with self._conn() as db:
            rows = await db.fetch(sql, *params)
        return [UsageRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    async def ledger_total(self, connection_id: str, window_key: str) -> int:
        """Sum of ledger charges of a connection in a window."""
        async with self._conn() as db:
            total = await db.fetchval(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE connection_id = $1 AND window_key = $2",
                connection_id,
                window_key,
            )
        return int(total)

    async def rebuild_counters(self) -> int:
        """Recompute every `spent` counter from the ledger."""
        async with self._conn() as db:
            status = await db.execute(
                "UPDATE counters SET spent = totals.amount FROM ("
                "SELECT c.connection_id, c.window_key, COALESCE(SUM(l.amount), 0) AS amount FROM counters c "
                "LEFT JOIN ledger l ON l.connection_id = c.connection_id AND l.window_key = c.window_key "
                "GROUP BY c.connection_id, c.window_key) AS totals "
                "WHERE counters.connection_id = totals.connection_id AND counters.window_key = totals.window_key "
                "AND counters.spent != totals.amount"
            )
        return int(status.split()[-1])
