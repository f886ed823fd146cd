"""The scale-out engine: PostgreSQL through an asyncpg pool, shared by any number of stateless instances.

Every unit of work runs on one pooled connection; writes run in a transaction of their own (PostgreSQL flushes
concurrent commits' WAL together by itself, so there is no group commit to add here). Anything raised while
connecting or on a lost connection is an outage (`outages.postgres_outage`), reported as
`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict, TypeVar

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from wattfare.server.store.outages import postgres_outage
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.sql.engine import Row, Work
from wattfare.server.store.sql.statement import Statement

T = TypeVar("T")

# Serialises concurrent `upgrade()` calls of instances starting together (an arbitrary, fixed lock id).
_MIGRATION_LOCK = 0x57A77FA2E


async def _keep_session(connection: object) -> None:
    """Nothing to reset when a connection goes back to the pool: a round trip saved on every store call.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on each release
    (3 of a request's 14 round trips, `benchmarks/pg_scale.py`). Wattfare keeps no session state: its one advisory
    lock is transaction-scoped, it declares no cursors, listens to nothing and sets no session settings; and
    asyncpg still rolls back a transaction left open before it calls this. Session state added one day must
    be undone where it is made, or this reset must return.
    """


class PostgresExecutor:
    """Runs statements on one pooled connection, in their PostgreSQL spelling."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        """Run statements on `conn` (an asyncpg connection)."""
        self._conn = conn

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """The first row the statement returns, or None."""
        return await self._conn.fetchrow(statement.postgres, *params)

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Every row the statement returns."""
        return await self._conn.fetch(statement.postgres, *params)

    async def run(self, statement: Statement, *params: object) -> int:
        """Run a statement for its effect; return how many rows it changed (the count its status ends with)."""
        status: str = await self._conn.execute(statement.postgres, *params)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def run_many(self, statement: Statement, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once per row of parameters."""
        await self._conn.executemany(statement.postgres, rows)


class PoolLimits(TypedDict, total=False):
    """`PostgresEngine`'s pool limits, for whatever builds one (the store passes them through unchanged)."""

    min_size: int
    max_size: int
    timeout: float
    acquire_timeout: float


class PostgresEngine:
    """A PostgreSQL database through an asyncpg connection pool (created on first use)."""

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
                        reset=_keep_session,
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncGenerator[Any]:
        """A pooled connection, its failures sorted into outages (`StoreUnavailableError`) and bugs."""
        connecting = True
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                connecting = False
                yield conn
        except Exception as exc:
            if postgres_outage(exc, connecting=connecting):
                raise StoreUnavailableError(f"PostgreSQL is unavailable: {type(exc).__name__}") from exc
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncGenerator[Any]:
        """A pooled connection inside a transaction, committed on exit (rolled back on an exception)."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """Run a read on a pooled connection; its first row or None."""
        async with self.connection() as conn:
            return await PostgresExecutor(conn).one(statement, *params)

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Run a read on a pooled connection; every row."""
        async with self.connection() as conn:
            return await PostgresExecutor(conn).all(statement, *params)

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a transaction of its own."""
        async with self.transaction() as conn:
            return await work(PostgresExecutor(conn))

    async def grouped_write(self, work: Work[T]) -> T:
        """Run a hot-path write in a transaction of its own."""
        return await self.write(work)

    async def write_statement(self, statement: Statement, *params: object) -> Row | None:
        """Run one statement on a pooled connection, outside any transaction block: it commits by itself."""
        async with self.connection() as conn:
            return await PostgresExecutor(conn).one(statement, *params)

    async def exclusive_write(self, work: Work[T]) -> T:
        """Run `work` in a transaction holding the migration lock, which other instances starting too wait for."""
        async with self.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            return await work(PostgresExecutor(conn))

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
