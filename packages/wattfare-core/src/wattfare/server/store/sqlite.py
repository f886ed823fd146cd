"""The embedded store: SQLite in WAL mode, zero setup.

Statements run synchronously on the event loop thread. Each is a few microseconds on a local file, far
less than a thread hop would cost, and it makes every store call atomic with respect to the other
coroutines of this process. Across processes (`wattfare serve --workers N`) SQLite's write lock
serialises writers; `BEGIN IMMEDIATE` takes it up front so a reserve's check and write cannot interleave
with another process's. The hot path's writes (reserve, settle) share one transaction per event-loop
turn (`sqlite_group_commit`): the COMMIT, not the statements, is what a SQLite write costs under load.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from wattfare.metering import charge_for
from wattfare.server.store.base import StoreUnavailableError
from wattfare.server.store.counter_holds import sqlite_hold
from wattfare.server.store.migrations import MIGRATIONS, statements_for
from wattfare.server.store.outages import sqlite_outage
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
from wattfare.server.store.sqlite_accounts import SQLiteAccounts
from wattfare.server.store.sqlite_checkpoints import JOURNAL_SIZE_LIMIT_BYTES, Checkpointer
from wattfare.server.store.sqlite_funding import SQLiteFunding
from wattfare.server.store.sqlite_group_commit import GroupCommit
from wattfare.server.store.timestamps import from_text, to_text

T = TypeVar("T")

# Writers of other processes queue behind each other; each transaction is sub-millisecond, so a long wait
# means overload, answered with 503 rather than an unbounded stall.
_BUSY_TIMEOUT_MS = 15000
# At ~1,000 requests/s a second of WAL is a few MB: small enough to fold back in one pass.
_CHECKPOINT_EVERY_SECONDS = 1.0


class _Connection(sqlite3.Connection):
    """A connection whose statements report an unusable file as `StoreUnavailableError` (see `outages`)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            if sqlite_outage(exc):
                raise StoreUnavailableError(f"SQLite is unavailable: {exc}") from exc
            raise


class SQLiteStore(SQLiteAccounts, SQLiteFunding):
    """A `Store` on one SQLite file (or `:memory:`); members and funding live in the mixins."""

    def __init__(self, path: str | Path) -> None:
        """Open (and create) the database file; call `upgrade()` before use."""
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if target != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: durable against process crashes; a power cut may lose the last commits.
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._transactions = GroupCommit(self._db)
        self._checkpointer: Checkpointer | None = None
        if target != ":memory:":
            # Checkpoints run on a thread of their own, never inside a request's COMMIT.
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            self._checkpointer = Checkpointer(target, _CHECKPOINT_EVERY_SECONDS)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transactions.alone()

    async def _grouped(self, write: Callable[[sqlite3.Connection], T]) -> T:
        return await self._transactions.grouped(write)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return cast("tuple[Any, ...] | None", self._db.execute(sql, params).fetchone())

    async def upgrade(self) -> list[int]:
        """Apply pending migrations in order, each in its own transaction."""
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        applied: list[int] = []
        for version, _ in MIGRATIONS:
            with self._write() as db:
                if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                    continue
                for statement in statements_for(version, "sqlite"):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, to_text(datetime.now(UTC))),
                )
            applied.append(version)
        return applied

    async def close(self) -> None:
        """Commit what is pending and close the database file."""
        self._transactions.flush()
        self._db.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()

    # -- apps and keys
    async def create_app(self, app_id: str, name: str, default_test_cap: int, now: datetime) -> AppRecord:
        """Register an app."""
        with self._write() as db:
            db.execute(
                "INSERT INTO apps (id, name, default_test_cap, created_at) VALUES (?, ?, ?, ?)",
                (app_id, name, default_test_cap, to_text(now)),
            )
        return AppRecord(app_id, name, default_test_cap, now)

    async def get_app(self, app_id: str) -> AppRecord | None:
        """Read an app by id."""
        row = self._one("SELECT id, name, default_test_cap, created_at FROM apps WHERE id = ?", (app_id,))
        return AppRecord(row[0], row[1], row[2], from_text(row[3])) if row else None

    async def add_key(
        self, key_id: str, app_id: str, mode: Mode, kind: str, key_hash: str, hint: str, now: datetime
    ) -> None:
        """Store a key by its hash."""
        with self._write() as db:
            db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, app_id, mode, kind, key_hash, hint, to_text(now)),
            )

    async def find_secret_key(self, key_hash: str) -> KeyRecord | None:
        """The unrevoked secret key with this hash, unless past its rotation grace, and its app."""
        row = self._one(
            "SELECT k.id, k.app_id, a.name, k.mode, a.default_test_cap, a.output_allowance FROM api_keys k "
            "JOIN apps a ON a.id = k.app_id "
            "WHERE k.key_hash = ? AND k.kind = 'secret' AND k.revoked_at IS NULL "
            "AND (k.expires_at IS NULL OR k.expires_at > ?)",
            (key_hash, to_text(datetime.now(UTC))),
        )
        return KeyRecord(row[0], row[1], row[2], row[3], row[4], row[5]) if row else None

    async def get_secret(self, name: str) -> str | None:
        """A server-wide secret."""
        row = self._one("SELECT value FROM server_secrets WHERE name = ?", (name,))
        return cast("str", row[0]) if row else None

    async def put_secret_if_absent(self, name: str, value: str) -> str:
        """Store a secret unless one exists; return the one in force."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?, ?)", (name, value))
            row = db.execute("SELECT value FROM server_secrets WHERE name = ?", (name,)).fetchone()
        return cast("str", row[0])

    # -- connections
    async def get_connection(self, app_id: str, mode: Mode, app_user_id: str) -> Connection | None:
        """The connection of this app user, in any state."""
        row = self._one(
            f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE app_id = ? AND mode = ? AND app_user_id = ?",
            (app_id, mode, app_user_id),
        )
        return connection_from_row(row) if row else None

    async def approve_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create or re-activate the connection with this cap."""
        with self._write() as db:
            row = db.execute(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'active', ?, ?, ?) "
                "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET state = 'active', cap = excluded.cap, "
                "updated_at = excluded.updated_at "
                f"RETURNING {CONNECTION_COLUMNS}",
                (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now)),
            ).fetchone()
        return connection_from_row(row)

    async def ensure_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create an active connection unless one exists; return the one in force."""
        with self._write() as db:
            db.execute(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'active', ?, ?, ?) ON CONFLICT (app_id, mode, app_user_id) DO NOTHING",
                (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now)),
            )
            row = db.execute(
                f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE app_id = ? AND mode = ? AND app_user_id = ?",
                (app_id, mode, app_user_id),
            ).fetchone()
        return connection_from_row(row)

    async def revoke_connection(self, app_id: str, mode: Mode, app_user_id: str, now: datetime) -> Connection | None:
        """Revoke the connection; None when there is none."""
        with self._write() as db:
            row = db.execute(
                "UPDATE connections SET state = 'revoked', updated_at = ? "
                "WHERE app_id = ? AND mode = ? AND app_user_id = ? "
                f"RETURNING {CONNECTION_COLUMNS}",
                (to_text(now), app_id, mode, app_user_id),
            ).fetchone()
        return connection_from_row(row) if row else None

    async def connection_states(self, connection_ids: list[str]) -> dict[str, str]:
        """Current state of each listed connection."""
        if not connection_ids:
            return {}
        marks = ",".join("?" * len(connection_ids))
        rows = self._db.execute(f"SELECT id, state FROM connections WHERE id IN ({marks})", connection_ids)
        return {row[0]: row[1] for row in rows}

    async def remember_requested_cap(self, app_id: str, mode: Mode, app_user_id: str, cap: int, now: datetime) -> None:
        """Keep the cap an app last suggested for its user."""
        with self._write() as db:
            db.execute(
                "INSERT INTO requested_caps (app_id, mode, app_user_id, cap, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (app_id, mode, app_user_id) "
                "DO UPDATE SET cap = excluded.cap, updated_at = excluded.updated_at",
                (app_id, mode, app_user_id, cap, to_text(now)),
            )

    async def requested_cap(self, app_id: str, mode: Mode, app_user_id: str) -> int | None:
        """The cap the app last suggested for this user."""
        row = self._one(
            "SELECT cap FROM requested_caps WHERE app_id = ? AND mode = ? AND app_user_id = ?",
            (app_id, mode, app_user_id),
        )
        return cast("int", row[0]) if row else None

    async def spend_token(self, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a single-use token used; False on a replay."""
        with self._write() as db:
            db.execute("DELETE FROM spent_tokens WHERE expires_at < ?", (to_text(now),))
            return (
                db.execute(
                    "INSERT INTO spent_tokens (token_id, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (token_id, to_text(expires_at)),
                ).rowcount
                == 1
            )

    async def count_hit(self, bucket: str, window_start: datetime) -> int:
        """Count one hit in a fixed rate-limit window."""
        with self._write() as db:
            # Old windows are dropped as new ones start, so the table stays one row per active bucket.
            db.execute("DELETE FROM rate_counts WHERE bucket = ? AND window_start < ?", (bucket, to_text(window_start)))
            row = db.execute(
                "INSERT INTO rate_counts (bucket, window_start, hits) VALUES (?, ?, 1) "
                "ON CONFLICT (bucket, window_start) DO UPDATE SET hits = hits + 1 RETURNING hits",
                (bucket, to_text(window_start)),
            ).fetchone()
        return cast("int", row[0])

    # -- metering
    async def budget(self, app_id: str, mode: Mode, app_user_id: str, window_key: str) -> BudgetSnapshot | None:
        """The connection and its counters for the window, in one statement."""
        row = self._one(
            "SELECT c.id, c.app_id, c.app_user_id, c.mode, c.state, c.cap, c.created_at, c.updated_at, "
            "COALESCE(k.spent, 0), COALESCE(k.reserved, 0) FROM connections c "
            "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = ? "
            "WHERE c.app_id = ? AND c.mode = ? AND c.app_user_id = ?",
            (window_key, app_id, mode, app_user_id),
        )
        if row is None:
            return None
        return BudgetSnapshot(connection_from_row(row[:8]), window_key, row[8], row[9])

    async def try_reserve(self, reservation: NewReservation) -> bool:
        """Hold the amount iff the connection is active and it fits under the cap: one conditional UPDATE."""
        return await self._grouped(lambda db: self._reserve_in(db, reservation))

    def _reserve_in(self, db: sqlite3.Connection, r: NewReservation) -> bool:
        held = sqlite_hold(db, r)
        if held:
            db.execute(
                "INSERT INTO reservations (id, connection_id, window_key, amount, model, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r.id, r.connection_id, r.window_key, r.amount, r.model, to_text(r.created_at), to_text(r.expires_at)),
            )
        return held

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Swap a reservation for its charge and append the ledger entry, in one transaction."""
        return await self._grouped(lambda db: self._settle_in(db, settlement, now))

    def _settle_in(self, db: sqlite3.Connection, s: Settlement, now: datetime) -> Settled | None:
        held = db.execute(
            "DELETE FROM reservations WHERE id = ? RETURNING connection_id, window_key, amount, model",
            (s.reservation_id,),
        ).fetchone()
        if held is None:
            return None
        connection_id, window_key, amount, model = held
        owner = db.execute(
            "SELECT c.app_id, c.mode, c.app_user_id, c.cap, k.spent FROM connections c "
            "JOIN counters k ON k.connection_id = c.id AND k.window_key = ? WHERE c.id = ?",
            (window_key, connection_id),
        ).fetchone()
        charge = charge_for(s.charged, held=amount, cap=owner[3], spent=owner[4])
        charged, absorbed = charge.charged, s.absorbed + charge.absorbed
        counters = db.execute(
            "UPDATE counters SET reserved = reserved - ?, spent = spent + ? "
            "WHERE connection_id = ? AND window_key = ? RETURNING spent, reserved",
            (amount, charged, connection_id, window_key),
        ).fetchone()
        db.execute(
            "INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, "
            "amount, absorbed, prompt_tokens, completion_tokens, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
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
            ),
        )
        # Same transaction: a credit-funded request's credits are charged exactly when its counters are.
        if s.holds_credits:
            self._settle_credit_hold(db, s.reservation_id, charged, now)
        return Settled(connection_id, window_key, counters[0], counters[1], owner[3], charged)

    async def renew_reservations(self, reservation_ids: list[str], expires_at: datetime) -> int:
        """Push back the deadline of holds still in flight."""
        if not reservation_ids:
            return 0
        marks = ",".join("?" * len(reservation_ids))
        with self._write() as db:
            return db.execute(
                f"UPDATE reservations SET expires_at = ? WHERE id IN ({marks})", (to_text(expires_at), *reservation_ids)
            ).rowcount

    async def expired_reservations(self, now: datetime, limit: int = 100) -> list[NewReservation]:
        """Reservations past their deadline."""
        rows = self._db.execute(
            "SELECT id, connection_id, window_key, amount, model, created_at, expires_at FROM reservations "
            "WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
            (to_text(now), limit),
        ).fetchall()
        return [NewReservation(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6])) for r in rows]

    async def usage(
        self, app_id: str, mode: Mode, app_user_id: str | None, start: datetime, end: datetime
    ) -> list[UsageRow]:
        """Ledger totals per app user and model in [start, end)."""
        sql = (
            "SELECT app_user_id, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(amount) "
            "FROM ledger WHERE app_id = ? AND mode = ? AND created_at >= ? AND created_at < ?"
        )
        params: list[Any] = [app_id, mode, to_text(start), to_text(end)]
        if app_user_id is not None:
            sql += " AND app_user_id = ?"
            params.append(app_user_id)
        sql += " GROUP BY app_user_id, model ORDER BY app_user_id, model"
        return [UsageRow(*row) for row in self._db.execute(sql, params)]

    async def ledger_total(self, connection_id: str, window_key: str) -> int:
        """Sum of ledger charges of a connection in a window."""
        row = self._one(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE connection_id = ? AND window_key = ?",
            (connection_id, window_key),
        )
        return cast("int", row[0]) if row else 0

    async def rebuild_counters(self) -> int:
        """Recompute every `spent` counter from the ledger."""
        with self._write() as db:
            return db.execute(
                "UPDATE counters SET spent = (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
                "WHERE l.connection_id = counters.connection_id AND l.window_key = counters.window_key) "
                "WHERE spent != (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
                "WHERE l.connection_id = counters.connection_id AND l.window_key = counters.window_key)"
            ).rowcount
