"""What the SQL written once needs from a database engine: statements run, and transactions of three kinds.

Every store operation is written once, as a coroutine over an `Executor`; an `Engine` decides how it runs.
SQLite runs it synchronously on the event loop (sqlite3 never waits, so its coroutines never suspend and a
transaction never spans other coroutines) and lets the hot path's writes share a COMMIT; PostgreSQL runs it
on a pooled connection, awaiting each statement. Only that, and the few statements the engines spell
differently (`statement.per_dialect`), is written per dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from wattfare.server.store.sql.statement import Statement

T = TypeVar("T")

# A result row: a tuple from sqlite3, an asyncpg Record; both index and unpack alike.
Row = Sequence[Any]


class Executor(Protocol):
    """Runs statements on one connection, inside the transaction its engine opened (if any)."""

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """The first row the statement returns, or None."""
        ...

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Every row the statement returns."""
        ...

    async def run(self, statement: Statement, *params: object) -> int:
        """Run a statement for its effect; return how many rows it changed."""
        ...

    async def run_many(self, statement: Statement, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once per row of parameters."""
        ...


# A unit of work: statements run in order on one executor, inside one transaction.
Work = Callable[[Executor], Coroutine[Any, Any, T]]


class Engine(Protocol):
    """A database: single reads, and the transactions the store's writes run in."""

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """Run a read alone, outside any write transaction; its first row or None."""
        ...

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Run a read alone, outside any write transaction; every row."""
        ...

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction of its own; its result once committed."""
        ...

    async def grouped_write(self, work: Work[T]) -> T:
        """Run a hot-path write; it may share its COMMIT with others (SQLite's group commit), never its outcome."""
        ...

    async def write_statement(self, statement: Statement, *params: object) -> Row | None:
        """Run one statement as a write transaction by itself; its first row or None.

        On PostgreSQL a lone statement is its own transaction: one round trip, where `write` spends three more
        (BEGIN, COMMIT, and one per further statement).
        """
        ...

    async def exclusive_write(self, work: Work[T]) -> T:
        """Run `work` in a transaction no other exclusive one overlaps, in any process (schema migrations)."""
        ...

    async def close(self) -> None:
        """Finish what is pending and let go of the database."""
        ...


class SqlConcern:
    """One concern of the store (apps, metering, funding…), written once over whichever `Engine` runs it."""

    def __init__(self, engine: Engine) -> None:
        """Run this concern's statements on `engine`."""
        self._engine = engine
