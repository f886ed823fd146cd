"""Members' connections in SQL: approving one funds it from the member's budget; they cap, revoke and chart it."""

from __future__ import annotations

from datetime import datetime

from wattfare.metering import nanos_to_json_number
from wattfare.server.store.account_records import DailySpend, MemberConnection
from wattfare.server.store.records import Connection, Mode
from wattfare.server.store.rows import CONNECTION_COLUMNS, QUALIFIED_CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.sql.connections import approve_and_announce
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.outbox import record_event
from wattfare.server.store.sql.statement import per_dialect, portable
from wattfare.server.store.timestamps import to_text
from wattfare.server.store.webhook_records import connection_event

_APPROVE = portable(
    "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at, member_id) "
    "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?) "
    "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET state = 'active', cap = excluded.cap, removed_at = NULL, "
    f"member_id = excluded.member_id, updated_at = excluded.updated_at RETURNING {CONNECTION_COLUMNS}"
)
_OF_MEMBER = portable(
    f"SELECT {QUALIFIED_CONNECTION_COLUMNS}, a.name, COALESCE(k.spent, 0), COALESCE(k.reserved, 0), c.alert_percent "
    "FROM connections c JOIN apps a ON a.id = c.app_id "
    "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = ? "
    "WHERE c.member_id = ? AND (c.state = 'active' OR c.removed_at IS NULL) AND c.app_user_id NOT LIKE 'grant:%' "
    "ORDER BY c.state, a.name, c.app_user_id"
)
# The cap before the change, read under the row's lock (PostgreSQL) or the write lock (SQLite), for the event.
_MEMBER_CONNECTION = (
    f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ? AND member_id = ? AND app_user_id NOT LIKE 'grant:%'"
)
_LOCK_MEMBER_CONNECTION = per_dialect(sqlite=_MEMBER_CONNECTION, postgres=f"{_MEMBER_CONNECTION} FOR UPDATE")
_SET_CAP = portable(f"UPDATE connections SET cap = ?, updated_at = ? WHERE id = ? RETURNING {CONNECTION_COLUMNS}")
_REVOKE = portable(
    "UPDATE connections SET state = 'revoked', updated_at = ? WHERE id = ? AND member_id = ? "
    f"AND app_user_id NOT LIKE 'grant:%' AND state = 'active' RETURNING {CONNECTION_COLUMNS}"
)
_REMOVE = portable(
    "UPDATE connections SET removed_at = ? WHERE id = ? AND member_id = ? AND state = 'revoked' AND removed_at IS NULL "
    "AND app_user_id NOT LIKE 'grant:%'"
)
# Joined on the connection's (app, mode, user), which every ledger row copies from its connection, so each
# connection's month is a range of `ledger_by_user_time`; by id, the connection's whole history was read.
_DAILY_SPEND = portable(
    "SELECT substr(l.created_at, 1, 10) AS day, SUM(l.amount), l.endpoint FROM ledger l "
    "JOIN connections c ON c.app_id = l.app_id AND c.mode = l.mode AND c.app_user_id = l.app_user_id "
    "WHERE c.member_id = ? AND l.created_at >= ? AND l.created_at < ? "
    "GROUP BY day, l.endpoint ORDER BY day, l.endpoint"
)


class SqlMemberConnections(SqlConcern):
    """`account_protocols.MemberConnections` over an engine."""

    async def approve_member_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, member_id: str, now: datetime
    ) -> Connection:
        """Create or re-activate a connection approved by a member."""
        params = (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now), member_id)
        return await self._engine.write(lambda db: approve_and_announce(db, _APPROVE, params, now))

    async def member_connections(self, member_id: str, window_key: str) -> list[MemberConnection]:
        """A member's connections with their counters for the window."""
        rows = await self._engine.all(_OF_MEMBER, window_key, member_id)
        return [
            MemberConnection(connection_from_row(r), r[8], int(r[9]), int(r[10]), None if r[11] is None else int(r[11]))
            for r in rows
        ]

    async def set_member_cap(self, member_id: str, connection_id: str, cap: int, now: datetime) -> Connection | None:
        """Change the cap of one of this member's connections."""
        return await self._engine.write(lambda db: _set_cap(db, member_id, connection_id, cap, now))

    async def revoke_member_connection(self, member_id: str, connection_id: str, now: datetime) -> Connection | None:
        """Revoke one of this member's connections."""
        return await self._engine.write(lambda db: _revoke(db, member_id, connection_id, now))

    async def remove_member_connection(self, member_id: str, connection_id: str, now: datetime) -> bool:
        """Take one of this member's revoked connections off their list; False when there is no such one."""
        return await self._engine.write(lambda db: db.run(_REMOVE, to_text(now), connection_id, member_id)) == 1

    async def member_daily_spend(self, member_id: str, start: datetime, end: datetime) -> list[DailySpend]:
        """Ledger charges of a member's connections per UTC day and endpoint."""
        rows = await self._engine.all(_DAILY_SPEND, member_id, to_text(start), to_text(end))
        # PostgreSQL sums BIGINTs as NUMERIC (a Decimal): money is an int.
        return [DailySpend(r[0], int(r[1]), r[2]) for r in rows]


async def _set_cap(db: Executor, member_id: str, connection_id: str, cap: int, now: datetime) -> Connection | None:
    before = await db.one(_LOCK_MEMBER_CONNECTION, connection_id, member_id)
    if before is None:
        return None
    row = await db.one(_SET_CAP, cap, to_text(now), connection_id)
    assert row is not None  # locked just now
    changed = connection_from_row(row)
    previous = connection_from_row(before).cap
    if previous != cap:
        previous_limits = {"monthlyUsd": nanos_to_json_number(previous)}
        await record_event(db, connection_event("connection.cap_changed", changed, now, previousLimits=previous_limits))
    return changed


async def _revoke(db: Executor, member_id: str, connection_id: str, now: datetime) -> Connection | None:
    row = await db.one(_REVOKE, to_text(now), connection_id, member_id)
    if row is None:  # none of theirs, or revoked already: nothing changes, nothing is announced
        found = await db.one(_LOCK_MEMBER_CONNECTION, connection_id, member_id)
        return connection_from_row(found) if found else None
    connection = connection_from_row(row)
    await record_event(db, connection_event("connection.revoked", connection, now))
    return connection
