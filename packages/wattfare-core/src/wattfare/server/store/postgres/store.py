"""The scale-out store: the SQL written once (`sql.store.SqlStore`) over PostgreSQL."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from wattfare.server.store.postgres.engine import PostgresEngine
from wattfare.server.store.sql.store import SqlStore


class PostgresStore(SqlStore):
    """A `Store` on PostgreSQL through an asyncpg connection pool (created on first use)."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 5.0,
        acquire_timeout: float = 30.0,
    ) -> None:
        """Connect lazily to `dsn` (`postgresql://user@host:port/db`); see `PostgresEngine` for the limits."""
        self._postgres = PostgresEngine(
            dsn, min_size=min_size, max_size=max_size, timeout=timeout, acquire_timeout=acquire_timeout
        )
        super().__init__(self._postgres)

    # The engine's connections, for tests that hold one busy or write behind the store's back.
    def _conn(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.connection()

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        return self._postgres.transaction()
