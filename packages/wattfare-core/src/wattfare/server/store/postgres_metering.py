"""The PostgreSQL store's metering: the budget read, reserve, settle, and the ledger behind them.

Reserve and settle are each one transaction whose guard is a single conditional UPDATE on the counter
row. Under READ COMMITTED, PostgreSQL re-checks an UPDATE's WHERE clause against the newest row version
after taking the row lock, so two instances racing for the last dollar cannot both pass the check.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from wattfare.metering import charge_for
from wattfare.server.store.counter_holds import postgres_hold
from wattfare.server.store.records import BudgetSnapshot, Mode, NewReservation, Settled, Settlement, UsageRow
from wattfare.server.store.rows import connection_from_row
from wattfare.server.store.timestamps import from_text, to_text


class PostgresMetering:
    """Mixed into `PostgresStore`, which provides pooled connections and transactions."""

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    async def _settle_credit_hold(self, db: Any, reservation_id: str, charged: int, now: datetime) -> None:
        raise NotImplementedError  # provided by PostgresFunding, which precedes this class in PostgresStore's bases

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
            held = await postgres_hold(db, r)
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
            charge = charge_for(s.charged, held=amount, cap=owner[3], spent=spent_before)
            charged, absorbed = charge.charged, s.absorbed + charge.absorbed
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
            if s.holds_credits:
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
