"""The scale-out store: the SQL written once (`sql.store.SqlStore`) over PostgreSQL."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Unpack

from wattfare.server.store.postgres.engine import PoolLimits, PostgresEngine
from wattfare.server.store.sql.measured import MeasuredEngine
from wattfare.server.store.sql.store import SqlStore


class PostgresStore(SqlStore):
    """A `Store` on PostgreSQL through an asyncpg connection pool (created on first use)."""

    _statements_cost_round_trips = True

    def __init__(self, dsn: str, **limits: Unpack[PoolLimits]) -> None:
        """Connect lazily to `dsn` (`postgresql://user@host:port/db`); `PostgresEngine` documents the limits."""
        self._postgres = PostgresEngine(dsn, **limits)
        super().__init__(MeasuredEngine(self._postgres))

    # The engine's connections, for tests that hold one busy or write behind the store's back.
    def _conn(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.connection()

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.transaction()
