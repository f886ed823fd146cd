"""The scale-out store: the SQL written once (`sql.store.SqlStore`) over PostgreSQL.

PostgreSQL costs a round trip per statement, so the hot path's writes take fewer, larger statements here: the
reserve's guard and hold record as one (`sql.cap_guard.HOLD_AND_RECORD`), and the usual settle as one call of
`wattfare_settle_usual` (migration 14), which books it only when the cap does not bind, no alert threshold is
crossed and no grant or credits are involved; anything else it refuses whole (WF001), and the settle runs the
statement-per-step path, where `wattfare.metering.charge_for` decides it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Unpack

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from wattfare.metering import THRESHOLDS
from wattfare.server.store.postgres.engine import PoolLimits, PostgresEngine
from wattfare.server.store.records import Settled, Settlement
from wattfare.server.store.sql.measured import MeasuredEngine
from wattfare.server.store.sql.statement import postgres_only
from wattfare.server.store.sql.store import SqlStore
from wattfare.server.store.timestamps import to_text

_SETTLE_USUAL = postgres_only("SELECT * FROM wattfare_settle_usual(?, ?, ?, ?, ?, ?, ?, ?)")
# Raised by `wattfare_settle_usual` for a settle it leaves to the statement-per-step path.
_NOT_USUAL = "WF001"
_THRESHOLDS = list(THRESHOLDS)


class PostgresStore(SqlStore):
    """A `Store` on PostgreSQL through an asyncpg connection pool (created on first use)."""

    _statements_cost_round_trips = True

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Settle in one round trip when it is the usual settle, else as every store does."""
        if settlement.holds_credits:
            return await super().settle(settlement, now)
        s = settlement
        try:
            row = await self._engine.write_statement(
                _SETTLE_USUAL,
                s.hold_id,
                s.charged,
                s.absorbed,
                s.kind,
                s.prompt_tokens,
                s.completion_tokens,
                to_text(now),
                _THRESHOLDS,
            )
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) != _NOT_USUAL:
                raise
            return await super().settle(settlement, now)
        if row is None:
            return None  # settled already
        return Settled(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])

    def __init__(self, dsn: str, **limits: Unpack[PoolLimits]) -> None:
        """Connect lazily to `dsn` (`postgresql://user@host:port/db`); `PostgresEngine` documents the limits."""
        self._postgres = PostgresEngine(dsn, **limits)
        super().__init__(MeasuredEngine(self._postgres))

    # The engine's connections, for tests that hold one busy or write behind the store's back.
    def _conn(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.connection()

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.transaction()
