"""The embedded engine: SQLite in WAL mode, zero setup.

Statements run synchronously on the event loop thread. Each is a few microseconds on a local file, far
less than a thread hop would cost, and it makes every store call atomic with respect to the other
coroutines of this process. Across processes (`wattfare serve --workers N`) SQLite's write lock
serialises writers; `BEGIN IMMEDIATE` takes it up front so a reserve's check and write cannot interleave
with another process's. The hot path's writes (reserve, settle) share one transaction per event-loop
turn (`group_commit`): the COMMIT, not the statements, is what a SQLite write costs under load.

The store's units of work are written once as coroutines (`sql.engine.Work`). Over sqlite3 they never
suspend, so `complete` runs one to its end in a single step, inside the transaction, which is how a group's
flush (synchronous by design) can run them and why no transaction ever spans another coroutine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from wattfare.server.store.outages import sqlite_outage
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.sql.engine import Row, Work
from wattfare.server.store.sql.statement import Statement
from wattfare.server.store.sqlite.checkpoints import JOURNAL_SIZE_LIMIT_BYTES, Checkpointer
from wattfare.server.store.sqlite.group_commit import GroupCommit

T = TypeVar("T")

# Writers of other processes queue behind each other; each transaction is sub-millisecond, so a long wait
# means overload, answered with 503 rather than an unbounded stall.
_BUSY_TIMEOUT_MS = 15000
# At ~1,000 requests/s a second of WAL is a few MB: small enough to fold back in one pass.
_CHECKPOINT_EVERY_SECONDS = 1.0
_PAGE_CACHE_KIB = 64 * 1024


class _Connection(sqlite3.Connection):
    """A connection whose statements report an unusable file as `StoreUnavailableError` (see `outages`)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            if sqlite_outage(exc):
                raise StoreUnavailableError(f"SQLite is unavailable: {exc}") from exc
            raise


class SQLiteExecutor:
    """Runs statements on the store's one connection, in their SQLite spelling."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        """Run statements on `db`."""
        self._db = db

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """The first row the statement returns, or None."""
        return cast("Row | None", self._db.execute(statement.sqlite, params).fetchone())

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Every row the statement returns."""
        return self._db.execute(statement.sqlite, params).fetchall()

    async def run(self, statement: Statement, *params: object) -> int:
        """Run a statement for its effect; return how many rows it changed."""
        return self._db.execute(statement.sqlite, params).rowcount

    async def run_many(self, statement: Statement, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once per row of parameters."""
        self._db.executemany(statement.sqlite, rows)


def complete(work: Coroutine[Any, Any, T]) -> T:
    """Run a unit of work over sqlite3 to its end in one step; it must not suspend (nothing it awaits does)."""
    try:
        work.send(None)
    except StopIteration as finished:
        return cast("T", finished.value)
    work.close()
    raise RuntimeError("a SQLite unit of work suspended inside its transaction")


class SQLiteEngine:
    """One SQLite file (or `:memory:`): reads on the spot, writes alone or grouped, checkpoints on a thread."""

    def __init__(self, path: str | Path) -> None:
        """Open (and create) the database file."""
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self.db: sqlite3.Connection = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        self.db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if target != ":memory:":
            self.db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: durable against process crashes; a power cut may lose the last commits.
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        # SQLite's default page cache is 2 MB: with a ledger of millions of rows, the indexes every request
        # walks (counters, holds, the ledger's right edge) fell out of it; 64 MB keeps them (a what-if on a
        # 4.7 GB file: +33% requests per second). Pages are allocated as they are read, so a small file stays small.
        self.db.execute(f"PRAGMA cache_size = -{_PAGE_CACHE_KIB}")
        self.transactions = GroupCommit(self.db)
        self.checkpointer: Checkpointer | None = None
        if target != ":memory:":
            # Checkpoints run on a thread of their own, never inside a request's COMMIT.
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
            self.db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            self.checkpointer = Checkpointer(target, _CHECKPOINT_EVERY_SECONDS)
        self._executor = SQLiteExecutor(self.db)

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """Run a read at once; it sees committed state only (no write transaction outlives a call)."""
        return await self._executor.one(statement, *params)

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """Run a read at once; every row."""
        return await self._executor.all(statement, *params)

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a `BEGIN IMMEDIATE … COMMIT` of its own."""
        with self.transactions.alone():
            return complete(work(self._executor))

    async def grouped_write(self, work: Work[T]) -> T:
        """Run `work` in this loop turn's shared transaction, inside its own savepoint; its result once committed."""
        return await self.transactions.grouped(lambda _: complete(work(self._executor)))

    async def write_statement(self, statement: Statement, *params: object) -> Row | None:
        """Run one statement in a `BEGIN IMMEDIATE … COMMIT` of its own; its first row or None."""
        with self.transactions.alone():
            return complete(self._executor.one(statement, *params))

    async def exclusive_write(self, work: Work[T]) -> T:
        """Run `work` alone: `BEGIN IMMEDIATE` already keeps every other writer, in any process, out."""
        return await self.write(work)

    async def close(self) -> None:
        """Commit what is pending, close the database file and stop checkpointing."""
        self.transactions.flush()
        self.db.close()
        if self.checkpointer is not None:
            self.checkpointer.stop()
