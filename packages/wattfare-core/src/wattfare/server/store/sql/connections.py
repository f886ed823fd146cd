"""Connections in SQL: an app user's consent, its state and cap, and the cap its app last suggested."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.records import Connection, Mode
from wattfare.server.store.rows import CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.outbox import record_event
from wattfare.server.store.sql.statement import Statement, id_list, portable, with_id_list
from wattfare.server.store.timestamps import to_text
from wattfare.server.store.webhook_records import connection_event

_GET = portable(f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE app_id = ? AND mode = ? AND app_user_id = ?")
_INSERT = (
    "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, 'active', ?, ?, ?) ON CONFLICT (app_id, mode, app_user_id) "
)
_APPROVE = portable(
    f"{_INSERT}DO UPDATE SET state = 'active', cap = excluded.cap, removed_at = NULL, updated_at = excluded.updated_at "
    f"RETURNING {CONNECTION_COLUMNS}"
)
_CREATE_UNLESS_ANY = portable(f"{_INSERT}DO NOTHING")
# Only an active connection is revoked (and announced); revoking a revoked one finds it as it is.
_REVOKE = portable(
    "UPDATE connections SET state = 'revoked', updated_at = ? WHERE app_id = ? AND mode = ? AND app_user_id = ? "
    f"AND state = 'active' RETURNING {CONNECTION_COLUMNS}"
)
_STATES = with_id_list("SELECT id, state FROM connections WHERE id IN {ids}")
_REMEMBER_REQUESTED_CAP = portable(
    "INSERT INTO requested_caps (app_id, mode, app_user_id, cap, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET cap = excluded.cap, updated_at = excluded.updated_at"
)
_REQUESTED_CAP = portable("SELECT cap FROM requested_caps WHERE app_id = ? AND mode = ? AND app_user_id = ?")


class SqlConnections(SqlConcern):
    """`protocols.Connections` over an engine."""

    async def get_connection(self, app_id: str, mode: Mode, app_user_id: str) -> Connection | None:
        """The connection of this app user, in any state."""
        row = await self._engine.one(_GET, app_id, mode, app_user_id)
        return connection_from_row(row) if row else None

    async def approve_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create or re-activate the connection with this cap."""
        params = (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now))
        return await self._engine.write(lambda db: approve_and_announce(db, _APPROVE, params, now))

    async def ensure_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create an active connection unless one exists; return the one in force."""
        params = (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now))
        return await self._engine.write(lambda db: _ensure(db, params, (app_id, mode, app_user_id), now))

    async def revoke_connection(self, app_id: str, mode: Mode, app_user_id: str, now: datetime) -> Connection | None:
        """Revoke the connection; None when there is none."""
        return await self._engine.write(lambda db: _revoke(db, (to_text(now), app_id, mode, app_user_id), now))

    async def connection_states(self, connection_ids: list[str]) -> dict[str, str]:
        """Current state of each listed connection."""
        if not connection_ids:
            return {}
        rows = await self._engine.all(_STATES, id_list(connection_ids))
        return {row[0]: row[1] for row in rows}

    async def remember_requested_cap(self, app_id: str, mode: Mode, app_user_id: str, cap: int, now: datetime) -> None:
        """Keep the cap an app last suggested for its user."""
        await self._engine.write(
            lambda db: db.run(_REMEMBER_REQUESTED_CAP, app_id, mode, app_user_id, cap, to_text(now))
        )

    async def requested_cap(self, app_id: str, mode: Mode, app_user_id: str) -> int | None:
        """The cap the app last suggested for this user."""
        row = await self._engine.one(_REQUESTED_CAP, app_id, mode, app_user_id)
        return row[0] if row else None


async def approve_and_announce(
    db: Executor, upsert: Statement, params: tuple[object, ...], now: datetime
) -> Connection:
    """Inside a write transaction: run an approving upsert and announce `connection.approved`."""
    row = await db.one(upsert, *params)
    assert row is not None  # an upsert always returns its row
    connection = connection_from_row(row)
    await record_event(db, connection_event("connection.approved", connection, now))
    return connection


async def _ensure(db: Executor, insert: tuple[object, ...], key: tuple[str, Mode, str], now: datetime) -> Connection:
    created = await db.run(_CREATE_UNLESS_ANY, *insert) == 1
    row = await db.one(_GET, *key)
    assert row is not None  # created just now, or there already
    connection = connection_from_row(row)
    if created:
        await record_event(db, connection_event("connection.approved", connection, now))
    return connection


async def _revoke(db: Executor, params: tuple[str, str, Mode, str], now: datetime) -> Connection | None:
    row = await db.one(_REVOKE, *params)
    if row is None:  # none, or revoked already: nothing changes, nothing is announced
        found = await db.one(_GET, *params[1:])
        return connection_from_row(found) if found else None
    connection = connection_from_row(row)
    await record_event(db, connection_event("connection.revoked", connection, now))
    return connection
