"""`wattfare ledger archive` at scale: a year of the ledger archived on SQLite and on PostgreSQL.

For each engine: a database seeded with N ledger rows over U users and 12 months (`ledger_seed.py`, the seeder of
`ledger_scale.py`), then every month but the current one archived in this process, as the command does it
(`archive_ledger` over `open_store`, into an `ArchiveFile`). Measured:

- before: ledger rows and the database's size (SQLite: the file, its pages and free pages; PostgreSQL:
  `pg_total_relation_size('ledger')`), the ledger's table and index bytes (`ledger_inspect.py`); the same of a
  vacuumed copy, the baseline for the size after the archive and a vacuum (a vacuum alone compacts the indexes,
  which grew by appends as a server's do);
- the archive: wall time, this process's CPU (PostgreSQL's own is measured apart, from `/proc`, for every
  `postgres` process on the machine), rows archived and roll-up rows written, rows per second, the file's bytes
  and bytes per archived row; the file is read back: its rows, their sum and its trailer against the ledger's;
- after: ledger rows and sizes, then again after `VACUUM` (SQLite) or `VACUUM FULL ledger` (PostgreSQL);
- the books: per (connection, window) the sums of amount, requests, prompt and completion tokens and absorbed,
  and the same per (connection, window, kind, model, endpoint, day), the roll-up's own grain, computed in SQL
  before and after: they must be identical; every counter's `spent` must equal its connection-window's ledger sum;
- `store.usage` of the whole app's last archived month and of its heaviest user, `store.usage_page` (the first
  page of 1,000 users and a middle one), before the archive and after it (after the vacuum): times, and the rows,
  which must be the same.

A run the store stops (an error it raises as the database being unavailable, or the day's rows changing) is run
again into a new file, as the README tells an operator to; the results list each interruption.

    .venv/bin/python benchmarks/ledger_archive_scale.py                              # 1M rows, 10k users: ~5 min
    .venv/bin/python benchmarks/ledger_archive_scale.py --rows 100000 --users 2000   # a smoke run

Results: benchmarks/results/ledger_archive.json (written after each engine) and a markdown table on stdout.
The PostgreSQL database `bench_archive` is created on the server of WATTFARE_TEST_POSTGRES_URL (default
127.0.0.1:5432) and dropped at the end unless --keep; the SQLite file and the archive files live in a temp dir,
removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from ledger_inspect import LedgerSize, PostgresDatabase, SqliteDatabase
from ledger_seed import Population, Size, population, seed_postgres, seed_sqlite
from servers import HERE, ROOT, log

from wattfare.metering import window_containing, window_of_key
from wattfare.server.billing.ledger_archive import ArchiveFile, ArchiveReport, archive_ledger, latest_archivable
from wattfare.server.store import Store, StoreUnavailableError, open_store
from wattfare.server.store.archive_protocols import ROLLED_UP, ArchiveMismatchError, RollUp
from wattfare.server.store.migrations import MIGRATIONS
from wattfare.server.store.records import UsageRow
from wattfare.server.store.timestamps import to_text

DEFAULT = Size(rows=1_000_000, users=10_000)
DATABASE = "bench_archive"
PAGE_USERS = 1000  # `api.usage.MAX_PAGE_USERS`: the SDK's page
RUNS = 5  # archive runs at most, when one is cut short
T = TypeVar("T")

# The books, as every reader of the ledger sees them: sums per connection-window (caps, counters), and per the
# roll-up's own grain, a connection-window's kind, model and endpoint on one day (usage reports, daily charts).
_SUMS = "SUM(amount), SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(absorbed)"
_BY_WINDOW = (
    f"SELECT connection_id, window_key, {_SUMS} FROM ledger GROUP BY connection_id, window_key "
    "ORDER BY connection_id, window_key"
)


def _by_grain(by: RollUp) -> str:
    """The sums at the roll-up's grain: a day's (YYYY-MM-DD) or, archived `--by month`, a month's (YYYY-MM)."""
    grain = f"connection_id, window_key, kind, model, endpoint, SUBSTR(created_at, 1, {10 if by == 'day' else 7})"
    return f"SELECT {grain}, {_SUMS} FROM ledger GROUP BY {grain} ORDER BY {grain}"


_COUNTERS = "SELECT connection_id, window_key, spent FROM counters"


# ---------------------------------------------------------------- the database, read from the side


class Side(Protocol):
    """One benchmark database, read and maintained beside the store."""

    engine: str

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """The statement's rows, streamed."""
        ...

    def run(self, sql: str) -> None:
        """Run a statement outside any transaction (VACUUM)."""
        ...

    def size(self) -> dict[str, int]:
        """The database's bytes on disk, as the engine counts them."""
        ...

    def ledger_size(self) -> LedgerSize:
        """The ledger's table and index bytes (`ledger_inspect.py`)."""
        ...

    def compacted_copy(self) -> Side:
        """A copy of the database with the ledger compacted (as VACUUM leaves it), the original left as it is."""
        ...

    def discard(self) -> None:
        """Delete this (copied) database."""
        ...


class SqliteSide:
    """A SQLite file."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        db = sqlite3.connect(self.path)
        try:
            yield from db.execute(sql)
        finally:
            db.close()

    def run(self, sql: str) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(sql)
        finally:
            db.close()

    def size(self) -> dict[str, int]:
        wal = self.path.with_name(self.path.name + "-wal")
        db = sqlite3.connect(self.path)
        try:
            page_size, page_count, freelist = (
                int(db.execute(f"PRAGMA {pragma}").fetchone()[0])
                for pragma in ("page_size", "page_count", "freelist_count")
            )
        finally:
            db.close()
        return {
            "file_bytes": self.path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "page_size": page_size,
            "page_count": page_count,
            "pages_bytes": page_count * page_size,
            "freelist_pages": freelist,
            "freelist_bytes": freelist * page_size,
        }

    def ledger_size(self) -> LedgerSize:
        return SqliteDatabase(self.path).ledger_size()

    def compacted_copy(self) -> SqliteSide:
        copy = self.path.with_name(f"compacted-{self.path.name}")
        copy.unlink(missing_ok=True)
        self.run(f"VACUUM INTO '{copy}'")
        return SqliteSide(copy)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class PostgresSide:
    """A PostgreSQL database; each call on a connection of its own (the store has its own pool)."""

    engine = "postgresql"

    def __init__(self, admin: str, name: str) -> None:
        self.admin = admin
        self.name = name
        self.url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))

    def _with(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            db = await asyncpg.connect(self.url, timeout=10)
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(go())

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        # Fetched whole (asyncpg cannot be iterated from synchronous code): a few hundred MB at 1M rows at most.
        async def fetch(db: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await db.fetch(sql, timeout=1800)]

        yield from self._with(fetch)

    def run(self, sql: str) -> None:
        self._with(lambda db: db.execute(sql, timeout=1800))

    def size(self) -> dict[str, int]:
        async def sizes(db: Any) -> dict[str, int]:
            ledger = await db.fetchval("SELECT pg_total_relation_size('ledger')")
            database = await db.fetchval("SELECT pg_database_size(current_database())")
            return {"ledger_total_relation_bytes": int(ledger), "database_bytes": int(database)}

        return self._with(sizes)

    def ledger_size(self) -> LedgerSize:
        return PostgresDatabase(self.url).ledger_size()

    def compacted_copy(self) -> PostgresSide:
        copy = PostgresSide(self.admin, f"{self.name}_compacted")
        # A file-level copy (no connection may be open on the original meanwhile), compacted there.
        asyncio.run(_admin(self.admin, *_drop(copy.name), f"CREATE DATABASE {copy.name} TEMPLATE {self.name}"))
        copy.run("VACUUM FULL ledger")
        return copy

    def discard(self) -> None:
        asyncio.run(_admin(self.admin, *_drop(self.name)))


def _drop(name: str) -> tuple[str]:
    return (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",)


async def _admin(admin: str, *statements: str) -> None:
    db = await asyncpg.connect(admin, timeout=10)
    try:
        for statement in statements:
            await db.execute(statement)
    finally:
        await db.close()


def postgres_cpu_seconds() -> dict[int, float]:
    """utime + stime of every `postgres` process on this machine, by pid (the server runs beside the benchmark)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the processes used between two readings; a process started between them counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# ---------------------------------------------------------------- the books


@dataclass(frozen=True)
class Books:
    """What no archive may change: the ledger's sums at two grains, and the counters."""

    windows: dict[tuple[str, str], tuple[int, ...]]
    day_groups: int
    day_digest: str
    counters: dict[tuple[str, str], int]
    seconds: float

    def counter_mismatches(self) -> int:
        """Counters whose `spent` is not their connection-window's ledger sum (a window without rows sums to 0)."""
        keys = self.windows.keys() | self.counters.keys()
        return sum(1 for key in keys if self.counters.get(key, 0) != self.windows.get(key, (0,))[0])

    def summary(self) -> dict[str, Any]:
        sums = [sum(values[index] for values in self.windows.values()) for index in range(5)]
        return {
            "connection_windows": len(self.windows),
            "amount_nanos": sums[0],
            "requests": sums[1],
            "prompt_tokens": sums[2],
            "completion_tokens": sums[3],
            "absorbed_nanos": sums[4],
            "day_groups": self.day_groups,
            "day_digest": self.day_digest,
            "counters": len(self.counters),
            "counter_mismatches": self.counter_mismatches(),
            "seconds": round(self.seconds, 2),
        }


def books(side: Side, by: RollUp) -> Books:
    """The books, computed in SQL (PostgreSQL's sums are NUMERIC: made ints, so both engines hash alike)."""
    started = time.perf_counter()
    windows = {(row[0], row[1]): tuple(int(value) for value in row[2:]) for row in side.rows(_BY_WINDOW)}
    digest = hashlib.sha256()
    groups = 0
    for row in side.rows(_by_grain(by)):
        digest.update(repr((*row[:6], *(int(value) for value in row[6:]))).encode())
        groups += 1
    counters = {(row[0], row[1]): int(row[2]) for row in side.rows(_COUNTERS)}
    return Books(windows, groups, digest.hexdigest(), counters, time.perf_counter() - started)


# ---------------------------------------------------------------- the archive, as the command runs it


@dataclass
class Archived:
    """One archive: its runs (more than one if a run was cut short and run again), their files and times."""

    reports: list[ArchiveReport] = field(default_factory=list[ArchiveReport])
    files: list[Path] = field(default_factory=list[Path])
    interruptions: list[str] = field(default_factory=list[str])
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    postgres_cpu_seconds: float | None = None


async def _archive_run(url: str, before: date, path: Path, done: Archived, by: RollUp) -> None:
    """One run of the archive, as `wattfare ledger archive --before --to` makes it: a store, a new file."""
    store = open_store(url)
    postgres = url.startswith("postgresql")
    server_cpu = postgres_cpu_seconds() if postgres else {}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with path.open("xb") as raw:
            done.files.append(path)
            sink = ArchiveFile(raw, before, datetime.now(UTC))
            try:
                done.reports.append(await archive_ledger(store, before, sink, by=by))
            finally:
                sink.finish()
    finally:
        done.wall_seconds += time.perf_counter() - wall
        done.cpu_seconds += time.process_time() - cpu
        if postgres:  # read before the store closes: its pool's backends did the work and exit with it
            done.postgres_cpu_seconds = (done.postgres_cpu_seconds or 0.0) + _cpu_since(
                server_cpu, postgres_cpu_seconds()
            )
        await store.close()


def archive(url: str, before: date, tmp: Path, engine: str, by: RollUp) -> Archived:
    """Archive everything before `before`; a run that stops on an error is run again, as the README tells an
    operator to (it goes on where it stopped), at most `RUNS` times. Each interruption is kept in the results."""
    done = Archived()
    for run in range(1, RUNS + 1):
        path = tmp / f"ledger-{engine}-to-{before:%Y-%m}-{run}.jsonl.gz"
        try:
            asyncio.run(_archive_run(url, before, path, done, by))
            return done
        except (StoreUnavailableError, ArchiveMismatchError) as exc:
            done.interruptions.append(f"run {run}, {done.wall_seconds:.1f} s in: {type(exc).__name__}: {exc}")
            log(f"{engine}: the archive stopped ({done.interruptions[-1]}); running it again")
    raise RuntimeError(f"{engine}: the archive stopped {RUNS} times: {done.interruptions}")


def check_files(paths: list[Path], before: date, taken: tuple[int, int]) -> dict[str, Any]:
    """Read the archive back: each file a header, rows, a trailer with their count and sum; together (a row written
    by a run cut short before its day was rolled up is written again by the next run: the files share it, by
    `request_id`) exactly the request rows the ledger held before `before` (`taken`: their count and sum)."""
    amounts: dict[str, int] = {}
    rows = uncompressed = 0
    files_whole = True
    latest = ""
    for path in paths:
        header: dict[str, Any] = {}
        trailer: dict[str, Any] = {}
        count = amount = 0
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines):
                uncompressed += len(line)
                record = orjson.loads(line)
                if number == 0:
                    header = record
                elif "request_id" in record:
                    count, amount = count + 1, amount + record["amount"]
                    amounts[record["request_id"]] = record["amount"]
                    latest = max(latest, record["created_at"])
                else:
                    trailer = record
        rows += count
        files_whole = files_whole and header.get("before") == before.isoformat()
        files_whole = files_whole and trailer == {"rows": count, "amount": amount}
    distinct = (len(amounts), sum(amounts.values()))
    return {
        "checked": files_whole and distinct == taken and latest < before.isoformat(),
        "files": len(paths),
        "rows": rows,
        "distinct_rows": distinct[0],
        "amount_nanos": distinct[1],
        "ledger_rows_before": taken[0],
        "ledger_amount_before_nanos": taken[1],
        "latest_created_at": latest,
        "uncompressed_bytes": uncompressed,
    }


# ---------------------------------------------------------------- usage reads, before and after


async def _median_ms(read: Callable[[], Awaitable[list[UsageRow]]], runs: int) -> tuple[float, list[UsageRow]]:
    await read()  # warm-up
    times: list[float] = []
    rows: list[UsageRow] = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = await read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


async def _usage_reads(url: str, people: Population, month: str) -> dict[str, tuple[float, list[UsageRow]]]:
    """The whole app's month, its heaviest user's month and two pages of it, each timed (median of a few runs)."""
    window = window_of_key(month)
    app, start, end = people.main_app_id, window.start, window.end
    store: Store = open_store(url)
    try:
        whole = await _median_ms(lambda: store.usage(app, "test", None, start, end), 3)
        users = list(dict.fromkeys(row.app_user_id for row in whole[1]))  # in the store's order
        middle = users[len(users) // 2] if users else ""
        heaviest = people.heaviest_main_user
        return {
            "usage_app_month": whole,
            "usage_user_month": await _median_ms(lambda: store.usage(app, "test", heaviest, start, end), 7),
            "usage_page_first": await _median_ms(
                lambda: store.usage_page(app, "test", start, end, after="", users=PAGE_USERS + 1), 5
            ),
            "usage_page_middle": await _median_ms(
                lambda: store.usage_page(app, "test", start, end, after=middle, users=PAGE_USERS + 1), 5
            ),
        }
    finally:
        await store.close()


def usage_reads(url: str, people: Population, month: str) -> dict[str, tuple[float, list[UsageRow]]]:
    return asyncio.run(_usage_reads(url, people, month))


# ---------------------------------------------------------------- one engine, start to end


def _provision(url: str) -> str:
    """Migrate the database and register the benchmark app (as `ledger_scale.py` does); the app's id."""
    from tests.support.wattfare_server import provision

    return provision(url, "Benchmark app", "1000000", modes=("test", "live")).app.id


async def _upgrade(url: str) -> list[int]:
    store = open_store(url)
    try:
        return await store.upgrade()
    finally:
        await store.close()


def _totals(side: Side, sql: str) -> tuple[int, int]:
    (row,) = side.rows(sql)  # read to its end, so SQLite's connection is closed before a VACUUM
    return int(row[0]), int(row[1])


def _sizes(side: Side) -> dict[str, Any]:
    ledger = side.ledger_size()
    return {**side.size(), "ledger_rows": ledger.rows, "ledger": {**asdict(ledger), "total_bytes": ledger.total_bytes}}


def _seed(engine: str, args: argparse.Namespace, size: Size, tmp: Path, now: datetime) -> tuple[str, Side, Population]:
    path = tmp / "archive.db"
    if engine == "sqlite":
        for leftover in tmp.glob("archive.db*"):
            leftover.unlink()
        url, side = f"sqlite:///{path}", SqliteSide(path)
    else:
        side = PostgresSide(args.postgres_url, DATABASE)
        asyncio.run(_admin(args.postgres_url, *_drop(DATABASE), f"CREATE DATABASE {DATABASE}"))
        url = side.url
    people = population(size, _provision(url), now)
    log(f"{engine}: seeding {size.rows:,} ledger rows over {size.users:,} users")
    seconds = seed_sqlite(path, size, people, now) if engine == "sqlite" else seed_postgres(url, size, people, now)
    log(f"{engine}: seeded in {seconds:.0f} s")
    return url, side, people


def run_engine(engine: str, args: argparse.Namespace, size: Size, tmp: Path) -> dict[str, Any]:
    """Seed, measure, archive, vacuum, measure again and check the books, on one engine."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    url, side, people = _seed(engine, args, size, tmp, now)
    seed_seconds = time.perf_counter() - started
    # The seeder writes into a database the current code migrated; `upgrade` must find nothing left to do.
    applied_now = asyncio.run(_upgrade(url))
    schema = _totals(side, "SELECT MAX(version), 0 FROM schema_migrations")[0]
    if schema != MIGRATIONS[-1][0]:
        raise RuntimeError(f"{engine}: schema at migration {schema}, the code's latest is {MIGRATIONS[-1][0]}")
    # Every month but the current one: the seeder's last month is the one `now` is in.
    before = window_containing(now).start.date()
    if before > latest_archivable(datetime.now(UTC)) or people.months[-1] != window_containing(now).key:
        raise RuntimeError(f"{engine}: {before} is not the current month's first day")
    month = people.months[-2]  # the last archived month, read by usage before and after
    result: dict[str, Any] = {
        "seed_seconds": round(seed_seconds, 1),
        "schema_version": schema,
        "migrations_applied_after_seed": applied_now,
        "before": before.isoformat(),
        "usage_month": month,
    }
    try:
        result["size_before"] = _sizes(side)
        # What VACUUM alone would make of the ledger as seeded (indexes grown by appends are not full): the
        # baseline the size after the archive and a VACUUM is read against. Measured on a copy, so the archive
        # runs on the ledger as a server leaves it.
        compacted = side.compacted_copy()
        try:
            result["size_before_vacuumed"] = _sizes(compacted)
        finally:
            compacted.discard()
        log(f"{engine}: {result['size_before']['ledger_rows']:,} rows; computing the books")
        books_before = books(side, args.by)
        if books_before.counter_mismatches():
            raise RuntimeError(f"{engine}: {books_before.counter_mismatches()} counters differ from the seeded ledger")
        reads_before = usage_reads(url, people, month)
        cutoff = to_text(datetime.combine(before, datetime.min.time(), UTC))
        taken = _totals(side, f"SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger WHERE created_at < '{cutoff}'")
        log(f"{engine}: archiving everything before {before} ({taken[0]:,} rows)")
        archived = archive(url, before, tmp, engine, args.by)
        rows = sum(report.rows for report in archived.reports)
        roll_ups = _totals(side, f"SELECT COUNT(*), 0 FROM ledger WHERE request_id LIKE '{ROLLED_UP}%'")[0]
        left = _totals(
            side, f"SELECT COUNT(*), 0 FROM ledger WHERE created_at < '{cutoff}' AND request_id NOT LIKE '{ROLLED_UP}%'"
        )[0]
        file_bytes = sum(path.stat().st_size for path in archived.files)
        log(
            f"{engine}: {taken[0]:,} rows archived in {archived.wall_seconds:.1f} s "
            f"({taken[0] / archived.wall_seconds:,.0f} rows/s), {roll_ups:,} roll-up rows, {file_bytes / 1e6:.1f} MB "
            f"file, {len(archived.interruptions)} interruptions"
        )
        result["archive"] = {
            "runs": [asdict(report) for report in archived.reports],
            "interruptions": archived.interruptions,
            "rows": taken[0],
            "amount_nanos": taken[1],
            "roll_ups": roll_ups,
            "request_rows_left_before": left,
            "wall_seconds": round(archived.wall_seconds, 2),
            "process_cpu_seconds": round(archived.cpu_seconds, 2),
            "postgres_cpu_seconds": None
            if archived.postgres_cpu_seconds is None
            else round(archived.postgres_cpu_seconds, 2),
            "rows_per_second": round(taken[0] / archived.wall_seconds),
            "roll_ups_per_archived_row": round(roll_ups / max(taken[0], 1), 4),
            "file_bytes": file_bytes,
            "file_bytes_per_row": round(file_bytes / max(taken[0], 1), 1),
            "file": check_files(archived.files, before, taken),
            # What the command prints, summed over runs (after a cut, a day written but not rolled up is in the
            # next run's report too, so only an uncut archive's report must match the ledger exactly).
            "reported": {"rows": rows, "amount_nanos": sum(report.amount for report in archived.reports)},
            "report_agrees": bool(archived.interruptions) or (rows, archived.reports[0].amount) == taken,
        }
        result["size_after"] = _sizes(side)
        vacuum = "VACUUM" if engine == "sqlite" else "VACUUM FULL ledger"
        log(f"{engine}: {vacuum}")
        vacuumed = time.perf_counter()
        side.run(vacuum)
        if engine == "sqlite":  # VACUUM wrote the whole file into the WAL: back into the file, as checkpoints do
            side.run("PRAGMA wal_checkpoint(TRUNCATE)")
        result["vacuum"] = {"statement": vacuum, "seconds": round(time.perf_counter() - vacuumed, 1)}
        if engine == "postgresql":
            side.run("ANALYZE ledger")  # statistics for the reads timed next, as autovacuum would renew them
        result["size_after_vacuum"] = _sizes(side)
        books_after = books(side, args.by)
        reads_after = usage_reads(url, people, month)
        result["books"] = _compare_books(books_before, books_after)
        result["usage"] = {
            name: {
                "rows": len(found),
                "before_ms": round(ms, 2),
                "after_ms": round(reads_after[name][0], 2),
                "same_rows": found == reads_after[name][1],
            }
            for name, (ms, found) in reads_before.items()
        }
        _check(engine, result)
    finally:
        if engine == "postgresql" and not args.keep:
            asyncio.run(_admin(args.postgres_url, *_drop(DATABASE)))
    return result


def _compare_books(before: Books, after: Books) -> dict[str, Any]:
    return {
        "books_equal": before.windows == after.windows,
        "day_grain_equal": before.day_digest == after.day_digest and before.day_groups == after.day_groups,
        "counters_unchanged": before.counters == after.counters,
        "counters_match_ledger": after.counter_mismatches() == 0,
        "before": before.summary(),
        "after": after.summary(),
    }


def _check(engine: str, result: dict[str, Any]) -> None:
    """Fail the run (after the figures are kept) when the archive changed any total or left a bad file."""
    found = result["books"]
    failed = [
        name
        for name in ("books_equal", "day_grain_equal", "counters_unchanged", "counters_match_ledger")
        if not found[name]
    ]
    failed += [f"usage {name}" for name, read in result["usage"].items() if not read["same_rows"]]
    if not result["archive"]["file"]["checked"]:
        failed.append("archive file")
    if not result["archive"]["report_agrees"]:
        failed.append("the archive's report")
    if result["archive"]["request_rows_left_before"]:
        failed.append("request rows left before the cut-off")
    if (
        result["size_after"]["ledger_rows"]
        != result["size_before"]["ledger_rows"] - result["archive"]["rows"] + result["archive"]["roll_ups"]
    ):
        failed.append("ledger rows after != before - archived + roll-ups")
    result["failed"] = failed
    if failed:
        log(f"{engine}: CHECKS FAILED: {', '.join(failed)}")
    else:
        log(f"{engine}: books equal, counters match the ledger, usage reads the same, the file checks")


# ---------------------------------------------------------------- results


def _mb(count: int) -> str:
    return f"{count / 1e6:,.1f}"


def _db_bytes(engine: str, size: dict[str, Any]) -> int:
    return size["pages_bytes"] if engine == "sqlite" else size["ledger_total_relation_bytes"]


def markdown(results: dict[str, Any]) -> str:
    """The table: one line per engine."""
    lines = [
        "| engine | ledger rows before → after | archived → roll-up rows | archive s (CPU s) | rows/s | file MB "
        "(B/row) | DB MB as seeded (vacuumed) → archived → vacuumed | books equal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for engine, found in results["engines"].items():
        if "books" not in found:
            continue
        archive = found["archive"]
        seeded, compacted, archived, vacuumed = (
            _mb(_db_bytes(engine, found[key]))
            for key in ("size_before", "size_before_vacuumed", "size_after", "size_after_vacuum")
        )
        cpu = f"{archive['process_cpu_seconds']:.1f}"
        if archive["postgres_cpu_seconds"] is not None:
            cpu += f" + {archive['postgres_cpu_seconds']:.1f} server"
        lines.append(
            f"| {engine} | {found['size_before']['ledger_rows']:,} → {found['size_after']['ledger_rows']:,} "
            f"| {archive['rows']:,} → {archive['roll_ups']:,} | {archive['wall_seconds']:.1f} ({cpu}) "
            f"| {archive['rows_per_second']:,} | {_mb(archive['file_bytes'])} ({archive['file_bytes_per_row']:.0f}) "
            f"| {seeded} ({compacted}) → {archived} → {vacuumed} "
            f"| {'yes' if found['books']['books_equal'] else '**no**'} |"
        )
    lines.append("")
    lines.append(
        "DB MB: SQLite page_count × page_size; PostgreSQL pg_total_relation_size('ledger'). \"vacuumed\": after "
        "VACUUM (SQLite) or VACUUM FULL ledger (PostgreSQL); the seeded database's is measured on a copy."
    )
    return "\n".join(lines)


def publish(args: argparse.Namespace, size: Size, engines: dict[str, Any], started: float, *, final: bool) -> None:
    """Write the results JSON (after each engine), and print the table at the end."""
    results = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"rows": size.rows, "users": size.users, "months": 12, "page_users": PAGE_USERS, "by": args.by},
        "engines": engines,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if final:
        print(markdown(results))
        shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
        log(f"done in {results['seconds']:.0f} s: {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT.rows, help="ledger rows (default 1,000,000)")
    parser.add_argument("--users", type=int, default=DEFAULT.users, help="connections (default 10,000)")
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("WATTFARE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help=f"an admin URL on the PostgreSQL server (the database {DATABASE} is created beside it)",
    )
    parser.add_argument("--by", choices=["day", "month"], default="day", help="what a roll-up row covers (default day)")
    parser.add_argument("--keep", action="store_true", help="keep the databases, the archive files and the temp dir")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ledger_archive.json")
    args = parser.parse_args()
    size = Size(rows=args.rows, users=args.users)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-archive-"))
    engines: dict[str, Any] = {}
    failed = False
    try:
        for engine in args.engines.split(","):
            engines[engine] = run_engine(engine, args, size, tmp)
            failed = failed or bool(engines[engine]["failed"])
            publish(args, size, engines, started, final=False)  # a later engine's failure keeps this one's figures
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    publish(args, size, engines, started, final=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
