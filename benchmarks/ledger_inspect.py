"""Looking inside a big Wattfare database for `ledger_scale.py`: sizes, query plans, and query time alone.

The statements are the server's own (imported from its store), so a plan shown here is the plan the endpoint
runs. PostgreSQL shows `EXPLAIN (ANALYZE, BUFFERS)`; SQLite `EXPLAIN QUERY PLAN`. "Query time" is the
statement alone on a connection of the benchmark's (median of a few runs): the database's share of an
endpoint's time, without HTTP, JSON or templates.

Sizes: PostgreSQL's `pg_relation_size` of the ledger's heap (with its TOAST) and of each of its indexes;
SQLite's `dbstat` virtual table (every b-tree's pages, bytes as allocated on disk).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from wattfare.server.store.sql import ledger, member_connections, metering
from wattfare.server.store.sql.statement import Statement

# The reads behind the endpoints this benchmark times, by the name its results use.
READS: dict[str, Statement] = {
    "status": metering._BUDGET,  # pyright: ignore[reportPrivateUsage]
    "usage_user_month": ledger._USAGE_OF_ONE_USER,  # pyright: ignore[reportPrivateUsage]
    "usage_app_month": ledger._USAGE_OF_ALL,  # pyright: ignore[reportPrivateUsage]
    "account_connections": member_connections._OF_MEMBER,  # pyright: ignore[reportPrivateUsage]
    "account_daily_spend": member_connections._DAILY_SPEND,  # pyright: ignore[reportPrivateUsage]
}


@dataclass(frozen=True)
class LedgerSize:
    """The ledger's bytes on disk: the table and each index, and per row."""

    rows: int
    table_bytes: int
    index_bytes: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return self.table_bytes + sum(self.index_bytes.values())

    def per_row(self) -> dict[str, float]:
        rows = max(self.rows, 1)
        return {
            "table": self.table_bytes / rows,
            **{name: size / rows for name, size in self.index_bytes.items()},
            "total": self.total_bytes / rows,
        }


class Database(Protocol):
    """One benchmark database, read from the side."""

    engine: str

    def ledger_size(self) -> LedgerSize: ...

    def explain(self, name: str, params: tuple[object, ...]) -> str: ...

    def query_ms(self, name: str, params: tuple[object, ...], runs: int = 5) -> tuple[float, int]: ...


class SqliteDatabase:
    """A SQLite file, opened read-only beside the server (WAL lets both read at once)."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def ledger_size(self) -> LedgerSize:
        with self._open() as db:
            rows = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'ledger'")]
            sizes = dict(db.execute("SELECT name, pgsize FROM dbstat WHERE aggregate = TRUE").fetchall())
        return LedgerSize(rows, sizes["ledger"], {n: sizes[n] for n in names if n != "ledger" and n in sizes})

    def wal_file_bytes(self) -> int:
        """The size of the `-wal` file: how far the server's checkpoints are behind its commits."""
        wal = self.path.with_name(self.path.name + "-wal")
        return wal.stat().st_size if wal.exists() else 0

    def explain(self, name: str, params: tuple[object, ...]) -> str:
        with self._open() as db:
            plan = db.execute(f"EXPLAIN QUERY PLAN {READS[name].sqlite}", params).fetchall()
        return "\n".join(f"{row[0]}|{row[1]}| {row[3]}" for row in plan)

    def query_ms(self, name: str, params: tuple[object, ...], runs: int = 5) -> tuple[float, int]:
        """Median ms of the statement alone, and how many rows it returned."""
        times: list[float] = []
        count = 0
        with self._open() as db:
            for _ in range(runs):
                started = time.perf_counter()
                count = len(db.execute(READS[name].sqlite, params).fetchall())
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times), count


class PostgresDatabase:
    """A PostgreSQL database, read over a connection of its own."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, work: Any) -> Any:
        async def go() -> Any:
            db = await asyncpg.connect(self.url, timeout=10)
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(go())

    def ledger_size(self) -> LedgerSize:
        async def work(db: Any) -> LedgerSize:
            rows = await db.fetchval("SELECT COUNT(*) FROM ledger")
            # The heap with its TOAST and free-space/visibility maps: total size minus the indexes.
            table = await db.fetchval("SELECT pg_table_size('ledger')")
            indexes = await db.fetch(
                "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
                "WHERE indrelid = 'ledger'::regclass"
            )
            return LedgerSize(rows, table, {r[0]: r[1] for r in indexes})

        return self._run(work)

    def database_bytes(self) -> int:
        return int(self._run(lambda db: db.fetchval("SELECT pg_database_size(current_database())")))

    def wal_position(self) -> int:
        """Bytes of WAL written by the whole cluster so far (the test suite's writes count too, if it runs)."""
        return int(self._run(lambda db: db.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")))

    def explain(self, name: str, params: tuple[object, ...]) -> str:
        async def work(db: Any) -> str:
            rows = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {READS[name].postgres}", *params)
            return "\n".join(r[0] for r in rows)

        return self._run(work)

    def query_ms(self, name: str, params: tuple[object, ...], runs: int = 5) -> tuple[float, int]:
        """Median ms of the statement alone (prepared once, as the server's pool does), and its row count."""

        async def work(db: Any) -> tuple[float, int]:
            statement = await db.prepare(READS[name].postgres)
            times: list[float] = []
            count = 0
            for _ in range(runs):
                started = time.perf_counter()
                count = len(await statement.fetch(*params))
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times), count

        return self._run(work)
