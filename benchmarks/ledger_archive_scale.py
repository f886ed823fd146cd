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
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger_archive_books import books, compare_books
from ledger_archive_runs import archive, check_files
from ledger_archive_side import PostgresSide, Side, SqliteSide, drop_database
from ledger_archive_table import markdown
from ledger_seed import Population, Size, population, seed_postgres, seed_sqlite
from pg_connection import run_as_admin
from servers import HERE, ROOT, log

from wattfare.metering import window_containing, window_of_key
from wattfare.server.billing.ledger_archive import latest_archivable
from wattfare.server.store import Store, open_store
from wattfare.server.store.archive_protocols import ROLLED_UP
from wattfare.server.store.migrations import MIGRATIONS
from wattfare.server.store.records import UsageRow
from wattfare.server.store.timestamps import to_text

# Its parts, one concept each: the database read beside the store (ledger_archive_side), the books no archive may
# change (ledger_archive_books), the archive's runs and its files read back (ledger_archive_runs), and the results'
# table (ledger_archive_table). This script seeds, reads usage, runs each engine start to end and writes the results.
DEFAULT = Size(rows=1_000_000, users=10_000)
DATABASE = "bench_archive"
PAGE_USERS = 1000  # `api.usage.MAX_PAGE_USERS`: the SDK's page


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
        asyncio.run(run_as_admin(args.postgres_url, *drop_database(DATABASE), f"CREATE DATABASE {DATABASE}"))
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
        result["books"] = compare_books(books_before, books_after)
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
            asyncio.run(run_as_admin(args.postgres_url, *drop_database(DATABASE)))
    return result


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
