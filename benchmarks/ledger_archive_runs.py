"""The archive of `ledger_archive_scale.py`, as `wattfare ledger archive` runs it, and its files read back.

Each run timed (wall, this process's CPU, the PostgreSQL server's CPU from `/proc`); a run the store stops is run
again into a new file, at most `RUNS` times.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from servers import log

from wattfare.server.billing.ledger_archive import ArchiveFile, ArchiveReport, archive_ledger
from wattfare.server.store import StoreUnavailableError, open_store
from wattfare.server.store.archive_protocols import ArchiveMismatchError, RollUp

RUNS = 5  # archive runs at most, when one is cut short


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
