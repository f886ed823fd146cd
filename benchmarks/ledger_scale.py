"""The ledger at scale: Wattfare's reads and its proxy over a year of history, on SQLite and on PostgreSQL.

Each engine gets two databases: a big one (N ledger rows over U users and 12 months, `ledger_seed.py`) and an
empty one, each served by its own `wattfare serve` (one worker, settings as shipped, the nginx stand-in as its
upstream). Then:

    GET /api/v1/status          random users' budgets, on the big and the empty database request by request in turn
    GET /api/v1/usage           one random user's last full month; the heaviest user's
    GET /api/v1/usage           the whole app's last full month, in pages of 1,000 app users (limit=1000):
                                every page once by `nextAfter` (up to 3 walks: wall time, pages, rows, the rows
                                checked against the old single statement's); then one page at three cursors
                                found by the walk (the first page, a middle one, a late one), in turn
    GET /account                the member with 20 connected apps (a session cookie seeded with the data)

timed on the client over loopback (there is no Server-Timing header), after a warm-up, so each figure is the
server's time plus one loopback round trip and httpx's parsing (~0.3 ms). The statements behind them are also
timed alone and explained (`ledger_inspect.py`): a page at the first and the middle cursor, and the whole month
in one statement as the /developers console still reads it. The ledger's bytes per row (table and each index)
come from the engine itself. Last, the proxy's non-streamed throughput at c=32 (wrk, users spread over 1,000
seeded users), the big and the empty database taking turns round by round, with CPU and bytes written per
request.

    .venv/bin/python benchmarks/ledger_scale.py            # 1,000,000 rows over 10,000 users (~5 min)
    .venv/bin/python benchmarks/ledger_scale.py --long     # 10,000,000 rows over 100,000 users (~35 min, 25 of
                                                           # them seeding; ~10 GB of disk while it runs)
    .venv/bin/python benchmarks/ledger_scale.py --long --keep          # keeps the databases and says where
    .venv/bin/python benchmarks/ledger_scale.py --long --reuse <dir>   # measures them again, without seeding

Results: benchmarks/results/ledger_scale.json (written after each engine) and a markdown table on stdout.
PostgreSQL databases `bench_ledger` and `bench_ledger_empty` are created on the server of
WATTFARE_TEST_POSTGRES_URL (default 127.0.0.1:5432) and dropped at the end unless --keep; the SQLite files live in
a temp dir, removed at the end unless --keep. Two runs at once on one PostgreSQL server drop each other's databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ledger_report
from ledger_inspect import Database, PostgresDatabase, SqliteDatabase
from ledger_scale_endpoints import time_endpoints, time_queries, time_status
from ledger_scale_pages import PAGE_USERS
from ledger_scale_proxy import proxy_rounds
from ledger_scale_served import Served, provision_app, start_server
from ledger_seed import Size, population, seed_postgres, seed_sqlite
from pg_connection import run_as_admin
from processes import stop_all
from servers import HERE, ROOT, log, start_nginx

DEFAULT = Size(rows=1_000_000, users=10_000)
LONG = Size(rows=10_000_000, users=100_000)
DATABASES = ("bench_ledger", "bench_ledger_empty")

# Its parts, one concept each: a server over one database (ledger_scale_served), the read endpoints and their
# statements timed (ledger_scale_endpoints, with ledger_scale_pages for the whole app's month and
# ledger_scale_timing), the proxy's throughput (ledger_scale_proxy).


def _postgres_url(admin: str, name: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


# ---------------------------------------------------------------- one engine, start to end


@dataclass
class Seeded:
    """A big database ready to serve (seeded now, or kept by an earlier `--keep` run) and a fresh empty one."""

    urls: list[str]
    databases: list[Database]
    app_id: str
    secret: str
    empty_secret: str
    seed_seconds: float | None


def prepare(engine: str, args: argparse.Namespace, size: Size, tmp: Path, now: datetime) -> Seeded:
    """Seed the big database (unless `--reuse` finds one kept with its key) and make a fresh empty one."""
    kept = tmp / f"ledger-{engine}.json"
    reuse = args.reuse is not None and kept.exists()
    if engine == "sqlite":
        urls = [f"sqlite:///{tmp / 'big.db'}", f"sqlite:///{tmp / 'empty.db'}"]
        databases: list[Database] = [SqliteDatabase(tmp / "big.db"), SqliteDatabase(tmp / "empty.db")]
        for leftover in tmp.glob("empty.db*"):
            leftover.unlink()
    else:
        names = DATABASES[1:] if reuse else DATABASES
        drops = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in names]
        asyncio.run(run_as_admin(args.postgres_url, *drops, *(f"CREATE DATABASE {name}" for name in names)))
        urls = [_postgres_url(args.postgres_url, name) for name in DATABASES]
        databases = [PostgresDatabase(url) for url in urls]
    _, empty_secret = provision_app(urls[1])
    if reuse:
        found = json.loads(kept.read_text())
        if (found["rows"], found["users"]) != (size.rows, size.users):
            raise SystemExit(f"{kept} holds {found['rows']:,} rows over {found['users']:,} users, not {size}")
        log(f"{engine}: reusing the big database kept by an earlier run ({found['rows']:,} rows)")
        return Seeded(urls, databases, found["app_id"], found["secret"], empty_secret, found.get("seed_seconds"))
    app_id, secret = provision_app(urls[0])
    log(f"{engine}: seeding {size.rows:,} ledger rows over {size.users:,} users")
    people = population(size, app_id, now)
    if engine == "sqlite":
        seconds = seed_sqlite(tmp / "big.db", size, people, now)
    else:
        seconds = seed_postgres(urls[0], size, people, now)
    log(f"{engine}: seeded in {seconds:.0f} s")
    sidecar = {"rows": size.rows, "users": size.users, "app_id": app_id, "secret": secret, "seed_seconds": seconds}
    kept.write_text(json.dumps(sidecar))
    return Seeded(urls, databases, app_id, secret, empty_secret, seconds)


def run_engine(engine: str, args: argparse.Namespace, size: Size, tmp: Path, upstream: str) -> dict[str, Any]:
    """Seed, serve, measure and tear down one engine's big and empty databases."""
    now = datetime.now(UTC)
    seeded = prepare(engine, args, size, tmp, now)
    people = population(size, seeded.app_id, now)
    urls, databases, secret, empty_secret, seconds = (
        seeded.urls,
        seeded.databases,
        seeded.secret,
        seeded.empty_secret,
        seeded.seed_seconds,
    )
    result: dict[str, Any] = {"seed_seconds": seconds, "heaviest_user": people.heaviest_main_user}
    started: list[Served] = []
    try:
        started.append(start_server(tmp, f"{engine}-big", urls[0], secret, upstream, databases[0]))
        started.append(start_server(tmp, f"{engine}-empty", urls[1], empty_secret, upstream, databases[1]))
        big, empty = started
        size_now = big.database.ledger_size()
        result["ledger_size"] = {**asdict(size_now), "bytes_per_row": size_now.per_row()}
        log(f"{engine}: ledger {size_now.rows:,} rows, {size_now.per_row()['total']:.0f} bytes/row")
        log(f"{engine}: timing the read endpoints")
        status = time_status(big, empty, people, args.samples)
        result["endpoints"] = {"status": status["big"], **time_endpoints(big, people, args)}
        result["status_on_empty"] = status["empty"]
        for name in ("status", "usage_user_month", "usage_heaviest_user_month", "usage_app_page", "account"):
            shown = result["endpoints"][name]
            log(f"    {name:<28} p50 {shown['p50_ms']:8.2f}  p99 {shown['p99_ms']:8.2f} ms")
        log(f"{engine}: the statements alone")
        result["queries"] = time_queries(big, people, result["endpoints"]["usage_app_page"]["cursors"])
        log(f"{engine}: proxy throughput, big vs empty database")
        result["proxy"] = proxy_rounds([big, empty], tmp, args.rounds, args.duration, args.wrk_users)
    finally:
        for served in started:
            served.server.stop()
        if engine == "postgresql" and not args.keep:
            asyncio.run(
                run_as_admin(args.postgres_url, *(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)" for n in DATABASES))
            )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help="10,000,000 rows over 100,000 users, longer wrk runs")
    parser.add_argument("--rows", type=int, help="ledger rows (default 1,000,000; --long 10,000,000)")
    parser.add_argument("--users", type=int, help="connections (default 10,000; --long 100,000)")
    parser.add_argument("--samples", type=int, default=200, help="timed requests per endpoint (default 200)")
    parser.add_argument(
        "--page-samples", type=int, default=20, help="timed whole-app usage pages at each of 3 cursors (default 20)"
    )
    parser.add_argument(
        "--walks", type=int, default=3, help="reads of every page of the app's month, while one takes < 60 s (3)"
    )
    parser.add_argument("--rounds", type=int, help="wrk rounds, big and empty in turn (default 3; --long 5)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5; --long 10)")
    parser.add_argument("--wrk-users", type=int, default=1000, help="seeded users wrk spreads over (default 1000)")
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("WATTFARE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="an admin URL on the PostgreSQL server (databases bench_ledger* are created beside it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and the temp dir (for --reuse)")
    parser.add_argument(
        "--reuse", type=Path, help="measure again the big databases a --keep run left in this dir (seed the others)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ledger_scale.json")
    args = parser.parse_args()
    base = LONG if args.long else DEFAULT
    size = Size(rows=args.rows or base.rows, users=args.users or base.users)
    args.rounds = args.rounds or (5 if args.long else 3)
    args.duration = args.duration or (10.0 if args.long else 5.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="wattfare-ledger-"))
    tmp.chmod(0o755)  # nginx's workers run as nobody
    engines: dict[str, Any] = {}
    try:
        _, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        for engine in args.engines.split(","):
            engines[engine] = run_engine(engine, args, size, tmp, upstream)
            publish(args, size, engines, started, final=False)  # a later engine's failure keeps this one's figures
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    publish(args, size, engines, started, final=True)
    return 0


def publish(args: argparse.Namespace, size: Size, engines: dict[str, Any], started: float, *, final: bool) -> None:
    """Write the results JSON (after each engine), and print the table at the end."""
    results = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {
            "rows": size.rows,
            "users": size.users,
            "samples": args.samples,
            "page_samples": args.page_samples,
            "page_users": PAGE_USERS,
            "walks": args.walks,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "wrk_users": args.wrk_users,
            "connections": 32,
        },
        "engines": engines,
    }
    results["summary"] = ledger_report.summarise(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if final:
        print(ledger_report.markdown(results))
        shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
        log(f"done in {results['seconds']:.0f} s: {shown}")


if __name__ == "__main__":
    sys.exit(main())
