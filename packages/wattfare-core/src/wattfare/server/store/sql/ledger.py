"""The ledger in SQL: usage reports read it, and the derived counters are rebuilt from it."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.records import Mode, UsageRow
from wattfare.server.store.sql.engine import Row, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_USAGE = (
    "SELECT app_user_id, model, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(amount), endpoint "
    "FROM ledger WHERE app_id = ? AND mode = ? AND created_at >= ? AND created_at < ?"
)
# A model serves one endpoint, so adding the endpoint to the grouping splits no (user, model) row in two.
_BY_USER_AND_MODEL = " GROUP BY app_user_id, model, endpoint ORDER BY app_user_id, model, endpoint"
# The whole app's period reads every row of it (`ledger_by_app_time`), so its cost grows with the app's traffic;
# one user's is a range of `ledger_by_user_time` (migration 13), whatever the app's size (benchmarks/ledger_scale.py).
_USAGE_OF_ALL = portable(f"{_USAGE}{_BY_USER_AND_MODEL}")
_USAGE_OF_ONE_USER = portable(f"{_USAGE} AND app_user_id = ?{_BY_USER_AND_MODEL}")
# A page of the whole app's period: the next `?` app users after a cursor who have rows in the period, then the
# period's rows of those users alone. Both halves are ranges of `ledger_by_user_time`, so a page costs about the
# same on the first and the hundredth page, and a report of 100,000 users never has to be one statement that
# outlives the statement timeout (or, on SQLite, holds the event loop for seconds).
_PAGE_OF_USERS = (
    "SELECT DISTINCT app_user_id FROM ledger WHERE app_id = ? AND mode = ? AND app_user_id > ? "
    "AND created_at >= ? AND created_at < ? ORDER BY app_user_id LIMIT ?"
)
_USAGE_OF_A_PAGE = portable(f"{_USAGE} AND app_user_id IN ({_PAGE_OF_USERS}){_BY_USER_AND_MODEL}")
_TOTAL = portable("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE connection_id = ? AND window_key = ?")
# A correlated subquery both engines run as written (PostgreSQL casts the numeric sum back to BIGINT).
_LEDGER_SUM = (
    "(SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
    "WHERE l.connection_id = counters.connection_id AND l.window_key = counters.window_key)"
)
_REBUILD = portable(f"UPDATE counters SET spent = {_LEDGER_SUM} WHERE spent != {_LEDGER_SUM}")


def _usage_rows(rows: list[Row]) -> list[UsageRow]:
    # PostgreSQL sums BIGINTs as NUMERIC (a Decimal): money and tokens are ints.
    return [UsageRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), r[6]) for r in rows]


class SqlLedger(SqlConcern):
    """`protocols.Ledger` over an engine."""

    async def usage(
        self, app_id: str, mode: Mode, app_user_id: str | None, start: datetime, end: datetime
    ) -> list[UsageRow]:
        """Ledger totals per app user, model and endpoint in [start, end)."""
        period = (app_id, mode, to_text(start), to_text(end))
        if app_user_id is None:
            rows = await self._engine.all(_USAGE_OF_ALL, *period)
        else:
            rows = await self._engine.all(_USAGE_OF_ONE_USER, *period, app_user_id)
        return _usage_rows(rows)

    async def usage_page(
        self, app_id: str, mode: Mode, start: datetime, end: datetime, *, after: str, users: int
    ) -> list[UsageRow]:
        """Ledger totals of the first `users` app users after `after` (in the store's order) in [start, end)."""
        period = (app_id, mode, to_text(start), to_text(end))
        rows = await self._engine.all(_USAGE_OF_A_PAGE, *period, *period[:2], after, *period[2:], users)
        return _usage_rows(rows)

    async def ledger_total(self, connection_id: str, window_key: str) -> int:
        """Sum of ledger charges of a connection in a window."""
        row = await self._engine.one(_TOTAL, connection_id, window_key)
        return int(row[0]) if row else 0

    async def rebuild_counters(self) -> int:
        """Recompute every `spent` counter from the ledger."""
        return await self._engine.write(lambda db: db.run(_REBUILD))
