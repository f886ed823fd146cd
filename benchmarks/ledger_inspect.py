"""Looking inside a big Wattfare database for `ledger_scale.py`: sizes, query plans, and query time alone.

The statements are the server's own (imported from its store), so a plan shown here is the plan the endpoint
runs. PostgreSQL shows `EXPLAIN (ANALYZE, BUFFERS)`; SQLite `EXPLAIN QUERY PLAN`. "Query time" is the
statement alone on a connection of the benchmark's (median of a few runs): the database's share of an
endpoint's time, without HTTP, JSON or templates.

The server's pool keeps its statements prepared, and after five runs PostgreSQL may swap a statement's custom
plan (made for the values at hand) for a generic one (made for any values): `explain(..., generic=True)` shows
the generic plan, the one a pooled connection runs from its sixth run of a statement on if the planner prefers it
(as it does a page of the whole app's usage: a generic LIMIT looks cheap).

Sizes: PostgreSQL's `pg_relation_size` of the ledger's heap (with its TOAST) and of each of its indexes;
SQLite's `dbstat` virtual table (every b-tree's pages, bytes as allocated on disk).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from pg_connection import run_on_connection

from wattfare.server.store.sql import ledger, member_connections, metering
from wattfare.server.store.sql.statement import Statement

# The reads behind the endpoints this benchmark times, by the name its results use.
READS: dict[str, Statement] = {
    "status": metering._BUDGET,  # pyright: ignore[reportPrivateUsage]
    "usage_user_month": ledger._USAGE_OF_ONE_USER,  # pyright: ignore[reportPrivateUsage]
    # The whole app's period in one statement: the /developers console still reads it so.
    "usage_app_month": ledger._USAGE_OF_ALL,  # pyright: ignore[reportPrivateUsage]
    # One page of it, as `GET /usage` without appUserId reads it (params: app, mode, start, end, app, mode,
    # after, start, end, users).
    "usage_app_page": ledger._USAGE_OF_A_PAGE,  # pyright: ignore[reportPrivateUsage]
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

    def explain(self, name: str, params: tuple[object, ...], *, generic: bool = False) -> str: ...

    def query_ms(self, name: str, params: tuple[object, ...], runs: int = 5) -> tuple[float, int]: ...

    def fetch(self, name: str, params: tuple[object, ...]) -> list[tuple[object, ...]]: ...


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

    def explain(self, name: str, params: tuple[object, ...], *, generic: bool = False) -> str:
        """The plan; `generic` means nothing here (SQLite plans each run with the values bound)."""
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

    def fetch(self, name: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._open() as db:
            return [tuple(row) for row in db.execute(READS[name].sqlite, params)]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PostgresDatabase:
    """A PostgreSQL database, read over a connection of its own."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

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

        return run_on_connection(self.url, work)

    def database_bytes(self) -> int:
        return int(run_on_connection(self.url, lambda db: db.fetchval("SELECT pg_database_size(current_database())")))

    def wal_position(self) -> int:
        """Bytes of WAL written by the whole cluster so far (the test suite's writes count too, if it runs)."""
        return int(run_on_connection(self.url, lambda db: db.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")))

    def explain(self, name: str, params: tuple[object, ...], *, generic: bool = False) -> str:
        """The plan made for these values, or (`generic`) the plan made for any values, run with these."""

        async def work(db: Any) -> str:
            if not generic:
                rows = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {READS[name].postgres}", *params)
                return "\n".join(r[0] for r in rows)
            # EXPLAIN binds protocol parameters into a custom plan, and EXPLAIN EXECUTE takes none: a statement
            # PREPAREd in SQL, executed with the values spelled out (the benchmark's own ids and dates).
            await db.execute(f"PREPARE bench_generic AS {READS[name].postgres}")
            await db.execute("SET plan_cache_mode = force_generic_plan")
            values = ", ".join(str(v) if isinstance(v, int) else _literal(str(v)) for v in params)
            rows = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({values})")
            return "\n".join(r[0] for r in rows)

        return run_on_connection(self.url, work)

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

        return run_on_connection(self.url, work)

    def fetch(self, name: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        """The statement's rows, sums as ints (PostgreSQL sums BIGINTs as NUMERIC), as the store reads them."""

        async def work(db: Any) -> list[tuple[object, ...]]:
            rows = await db.fetch(READS[name].postgres, *params)
            return [tuple(int(v) if isinstance(v, Decimal) else v for v in row) for row in rows]

        return run_on_connection(self.url, work)
