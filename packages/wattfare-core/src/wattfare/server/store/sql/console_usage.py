"""The console's usage card in SQL: an app's biggest spenders of a window, ranked by counters, read from the ledger.

Two reads (three when users are named), neither of which sums the app's ledger:

1. the app's connections in the mode (a range of the `connections` unique key), each with its counter of the window
   (a probe of the counters' key): the top few by `spent`, and the headline (how many spent, what in all). This
   walks one row per connection of the app, not one per request: its cost follows the app's users, not its traffic
   (90,000 connections: 95-280 ms on either engine, where summing that month's 146,000 ledger rows took 0.85-1 s).
   Bounding it by the page needs the app and mode in `counters`, indexed with the window and `spent` (a migration:
   the top is then 50 index entries, the headline an index-only range of the month's spenders, ~12 ms in all);
2. the ledger rows of just the listed connections in the window, through `ledger_by_connection
   (connection_id, window_key)`: the very rows `counters.spent` sums, so each cost shown is the user's `spent`.
"""

from __future__ import annotations

from collections.abc import Sequence

from wattfare.server.store.console_protocols import AppMonth, UserMonth
from wattfare.server.store.records import Mode
from wattfare.server.store.sql.engine import SqlConcern
from wattfare.server.store.sql.statement import id_list, portable, with_id_list

# One walk over the app's counters of the window, kept (a CTE named twice is materialized by both engines) for two
# uses: the `top` connections by spend, ties by app user id, and the headline, marked by its NULL id. A user with a
# counter but nothing spent yet ranks last (their requests may have cost nothing), so an app with fewer spenders
# than `top` still lists those who used it for free; the headline counts only those who spent.
# Measured at 90,000 connections and 2M ledger rows on PostgreSQL: 95 ms (custom plan) to 235 ms (generic plan, one
# counters probe per connection); two statements walked twice (150 to 480 ms), and window aggregates over the
# ranked rows took 245 to 350 ms (they made the join run whole before the sort).
_TOP_AND_HEADLINE = portable(
    "WITH month AS (SELECT c.id, c.app_user_id, k.spent FROM connections c "
    "JOIN counters k ON k.connection_id = c.id AND k.window_key = ? WHERE c.app_id = ? AND c.mode = ?) "
    "SELECT * FROM (SELECT id, 0, 0 FROM month ORDER BY spent DESC, app_user_id LIMIT ?) AS top "
    "UNION ALL SELECT NULL, COUNT(*), COALESCE(SUM(spent), 0) FROM month WHERE spent > 0"
)
_NAMED = with_id_list("SELECT c.id FROM connections c WHERE c.app_id = ? AND c.mode = ? AND c.app_user_id IN {ids}")
_LEDGER = with_id_list(
    "SELECT app_user_id, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(amount), "
    "SUM(CASE WHEN endpoint = 'embeddings' THEN requests ELSE 0 END), "
    "SUM(CASE WHEN endpoint = 'embeddings' THEN amount ELSE 0 END) "
    "FROM ledger WHERE connection_id IN {ids} AND window_key = ? GROUP BY app_user_id"
)


class SqlConsoleUsage(SqlConcern):
    """`console_protocols.ConsoleUsage` over an engine."""

    async def app_month(self, app_id: str, mode: Mode, window_key: str, *, top: int, named: Sequence[str]) -> AppMonth:
        """The `top` biggest spenders of the app-mode in the window, the users `named`, and the window's headline."""
        ranked = await self._engine.all(_TOP_AND_HEADLINE, window_key, app_id, mode, top)
        # SUM of BIGINT is NUMERIC on PostgreSQL (a Decimal): money and counts are ints.
        [(spenders, spent)] = [(int(row[1]), int(row[2])) for row in ranked if row[0] is None]
        connections = [row[0] for row in ranked if row[0] is not None]
        if named:
            connections += [row[0] for row in await self._engine.all(_NAMED, app_id, mode, id_list(named))]
        rows = await self._engine.all(_LEDGER, id_list(sorted(set(connections))), window_key) if connections else []
        found = {row[0]: UserMonth(row[0], *(int(value) for value in row[1:7])) for row in rows}
        for user in named:  # listed even with nothing in the ledger, or with no connection at all
            found.setdefault(user, UserMonth(user, 0, 0, 0, 0, 0, 0))
        users = sorted(found.values(), key=lambda user: (-user.cost, user.app_user_id))
        return AppMonth(users, spenders, spent)
