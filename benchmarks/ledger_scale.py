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
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import ledger_report
import standin
from ledger_inspect import Database, PostgresDatabase, SqliteDatabase
from ledger_seed import MEMBER_COOKIE, Population, Size, population, seed_postgres, seed_sqlite
from load import Target, run_wrk, wrk_script
from processes import Server, free_port, stop_all
from servers import HERE, RETRY, ROOT, log, start_nginx, wattfare_env

from wattfare.metering import nanos_to_json_number, window_containing, window_of_key
from wattfare.server.store.timestamps import to_text

DEFAULT = Size(rows=1_000_000, users=10_000)
LONG = Size(rows=10_000_000, users=100_000)
CAP_USD = "1000000"  # the default test cap: wrk's users never reach it
DATABASES = ("bench_ledger", "bench_ledger_empty")


@dataclass
class Served:
    """One `wattfare serve` over one database, with what the benchmark needs to call it."""

    label: str
    server: Server
    port: int
    secret: str
    database: Database

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _postgres_url(admin: str, name: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


async def _admin(admin: str, *statements: str) -> None:
    db = await asyncpg.connect(admin, timeout=10)
    try:
        for statement in statements:
            await db.execute(statement)
    finally:
        await db.close()


def _provision(url: str) -> tuple[str, str]:
    """Migrate and register the benchmark app (as `servers.provision_wattfare`); its id and test secret key."""
    from tests.support.wattfare_server import provision

    app = provision(url, "Benchmark app", CAP_USD, modes=("test", "live"))
    return app.app.id, app.secret_keys["test"]


def start_server(tmp: Path, label: str, url: str, secret: str, upstream: str, database: Database) -> Served:
    """`wattfare serve` over `url`, as `servers.start_wattfare` starts it (one worker, log level as shipped)."""
    from tests.support.wattfare_server import serve_command

    port = free_port()
    env = wattfare_env(url, port, upstream, CAP_USD)
    server = Server(label, serve_command(port, 1), tmp / f"{label}.log", env=env, cwd=tmp)
    server.start()
    server.wait_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200, 120, RETRY)
    return Served(label, server, port, secret, database)


# ---------------------------------------------------------------- the endpoints, timed


def _summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

    return {
        "samples": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
        "mean_ms": sum(ordered) / len(ordered),
    }


def _timed(client: httpx.Client, requests: list[tuple[str, dict[str, str]]], warmup: int) -> dict[str, Any]:
    """Each request in turn on one keep-alive connection; the first `warmup` are not counted."""
    times: list[float] = []
    sizes: list[int] = []
    statuses: dict[str, int] = {}
    for index, (path, params) in enumerate(requests):
        started = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {response.text[:300]}")
        if index >= warmup:
            times.append(elapsed)
            sizes.append(len(response.content))
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return {**_summary(times), "response_bytes": round(sum(sizes) / len(sizes)), "statuses": statuses}


def _month_range(key: str) -> dict[str, str]:
    window = window_of_key(key)
    return {"from": window.start.date().isoformat(), "to": (window.end - timedelta(days=1)).date().isoformat()}


def time_endpoints(target: Served, people: Population, args: argparse.Namespace) -> dict[str, Any]:
    """The other read endpoints on the big database, sequentially, each after its own warm-up."""
    rng = random.Random(7)
    samples = args.samples
    users = [f"bench-{rng.randrange(people.main_user_count)}" for _ in range(samples + 20)]
    month = _month_range(people.months[-2])  # the last full month
    auth = {"Authorization": f"Bearer {target.secret}"}
    results: dict[str, Any] = {"usage_month": month}
    with httpx.Client(base_url=target.base, headers=auth, timeout=600) as api:
        results["usage_user_month"] = _timed(api, [("/api/v1/usage", {"appUserId": u, **month}) for u in users], 20)
        heaviest = [("/api/v1/usage", {"appUserId": people.heaviest_main_user, **month})] * 25
        results["usage_heaviest_user_month"] = _timed(api, heaviest, 5)
        walks = walk_all_pages(api, month, args.walks)
        results["usage_app_all_pages"] = walks
        results["usage_app_page"] = time_pages(api, month, walks["cursors"], args.page_samples)
        results["usage_app_all_pages"]["matches_single_statement"] = _matches_single_statement(
            target, people, walks.pop("rows_seen")
        )
    cookies = {"wattfare_session": MEMBER_COOKIE}
    with httpx.Client(base_url=target.base, cookies=cookies, timeout=60) as browser:
        page = browser.get("/account")
        if page.status_code != 200 or ("member-" not in page.text and "Other app" not in page.text):
            raise RuntimeError(f"/account did not show the member's apps ({page.status_code}): {page.text[:500]}")
        results["account"] = _timed(browser, [("/account", {})] * (samples + 20), 20)
    return results


# ---------------------------------------------------------------- the whole app's month, page by page

PAGE_USERS = 1000  # the server's most per page (`api.usage.MAX_PAGE_USERS`), as the SDK's usage() asks


def _page_params(month: dict[str, str], after: str | None) -> dict[str, str]:
    return {**month, "limit": str(PAGE_USERS), **({} if after is None else {"after": after})}


def _walk(api: httpx.Client, month: dict[str, str]) -> dict[str, Any]:
    """The whole report once, page after page by `nextAfter`, as the SDK's usage() reads it."""
    cursors: list[str | None] = [None]
    rows: list[dict[str, Any]] = []
    page_ms: list[float] = []
    body_bytes = 0
    started = time.perf_counter()
    while True:
        asked = time.perf_counter()
        response = api.get("/api/v1/usage", params=_page_params(month, cursors[-1]))
        page_ms.append((time.perf_counter() - asked) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET /usage page {len(cursors)} answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        rows += body["data"]
        body_bytes += len(response.content)
        if not body["hasMore"]:
            break
        cursors.append(body["nextAfter"])
    return {
        "seconds": time.perf_counter() - started,
        "pages": len(cursors),
        "page_ms": page_ms,
        "response_bytes": body_bytes,
        "cursors": cursors,
        "rows_seen": rows,
    }


def walk_all_pages(api: httpx.Client, month: dict[str, str], walks: int) -> dict[str, Any]:
    """Wall time to read the whole month by following `nextAfter`, `walks` times while a walk takes under 60 s.

    The first walk also finds the cursors the single pages are timed at. Each walk must see the same rows.
    """
    done = [_walk(api, month)]
    while len(done) < walks and done[-1]["seconds"] < 60:
        done.append(_walk(api, month))
        if done[-1]["rows_seen"] != done[0]["rows_seen"]:
            raise RuntimeError("two walks over the same month's pages saw different rows")
    first = done[0]
    rows = first["rows_seen"]
    page_ms = [ms for walk in done for ms in walk["page_ms"]]
    walked = ", ".join(f"{walk['seconds']:.2f}" for walk in done)
    users = len({row["appUserId"] for row in rows})
    log(
        f"    usage_app_all_pages          {walked} s a walk: {first['pages']} pages, {users:,} users, "
        f"{len(rows):,} rows"
    )
    return {
        "walks": len(done),
        "seconds": [walk["seconds"] for walk in done],
        "seconds_median": statistics.median(walk["seconds"] for walk in done),
        "pages": first["pages"],
        "users": users,
        "rows": len(rows),
        "requests": sum(row["requests"] for row in rows),
        "response_bytes": first["response_bytes"],
        # Every page of every walk, the first walk's colder pages included.
        "page_ms": {
            **_summary(page_ms),
            "slowest_page": max(range(len(first["page_ms"])), key=first["page_ms"].__getitem__),
        },
        "cursors": first["cursors"],
        "rows_seen": rows,
    }


def _spread(count: int) -> dict[str, int]:
    """Which of `count` pages: the first, a middle one and a late one (the last full page: the very last may hold
    a few users)."""
    return {"first": 0, "middle": count // 2, "late": count - 2 if count >= 3 else count - 1}


def time_pages(api: httpx.Client, month: dict[str, str], cursors: list[str | None], samples: int) -> dict[str, Any]:
    """One page of 1,000 users at cursors spread over the report, the three in turn; one of each a warm-up."""
    spread = {label: cursors[index] for label, index in _spread(len(cursors)).items()}
    labelled = [(label, _page_params(month, after)) for label, after in spread.items()] * (samples + 1)
    times: dict[str, list[float]] = {label: [] for label in spread}
    sizes: list[int] = []
    for index, (label, params) in enumerate(labelled):
        started = time.perf_counter()
        response = api.get("/api/v1/usage", params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET /usage {params} answered {response.status_code}: {response.text[:300]}")
        if index >= len(spread):
            times[label].append(elapsed)
            sizes.append(len(response.content))
    every = [ms for label_times in times.values() for ms in label_times]
    by_cursor = {label: _summary(label_times) for label, label_times in times.items()}
    result = {
        **_summary(every),
        "response_bytes": round(sum(sizes) / len(sizes)),
        "statuses": {"200": len(every)},
        "cursors": spread,
        "page_index": _spread(len(cursors)),
        "by_cursor": by_cursor,
    }
    shown = ", ".join(f"{label} {summary['p50_ms']:.1f}" for label, summary in by_cursor.items())
    log(f"    usage_app_page               p50 {result['p50_ms']:.2f}  p99 {result['p99_ms']:.2f} ms ({shown})")
    return result


def _matches_single_statement(target: Served, people: Population, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The pages' rows against the old single statement's (`_USAGE_OF_ALL`, the console's): same rows, same order."""
    month = window_of_key(people.months[-2])
    whole = target.database.fetch(
        "usage_app_month", (people.main_app_id, "test", to_text(month.start), to_text(month.end))
    )
    expected = [
        (user, model, endpoint, count, prompt, completion, nanos_to_json_number(cast(int, cost)))
        for user, model, count, prompt, completion, cost, endpoint in whole
    ]
    seen = [
        (
            r["appUserId"],
            r["model"],
            r["endpoint"],
            r["requests"],
            r["promptTokens"],
            r["completionTokens"],
            r["costUsd"],
        )
        for r in rows
    ]
    same = seen == expected
    if not same:
        log(f"    the pages' {len(seen):,} rows differ from the single statement's {len(expected):,}")
    return {
        "same_rows": same,
        "single_statement_rows": len(expected),
        "single_statement_requests": sum(cast(int, row[3]) for row in expected),
    }


def time_queries(target: Served, people: Population, cursors: dict[str, str | None]) -> dict[str, Any]:
    """The statements behind the endpoints, alone, with their plans."""
    now = datetime.now(UTC)
    window = window_containing(now)
    month = window_of_key(people.months[-2])
    span = (to_text(month.start), to_text(month.end))
    app = (people.main_app_id, "test")

    def page(after: str | None) -> tuple[object, ...]:
        # As `SqlLedger.usage_page` binds them: one user more than the page tells whether another follows.
        return (*app, *span, *app, after or "", *span, PAGE_USERS + 1)

    cases: dict[str, tuple[str, tuple[object, ...]]] = {
        "status": ("status", (window.key, *app, "bench-1")),
        "usage_user_month": ("usage_user_month", (*app, *span, "bench-1")),
        "usage_heaviest_user_month": ("usage_user_month", (*app, *span, people.heaviest_main_user)),
        "usage_app_month": ("usage_app_month", (*app, *span)),
        "usage_app_page_first": ("usage_app_page", page(cursors["first"])),
        "usage_app_page_middle": ("usage_app_page", page(cursors["middle"])),
        "account_connections": ("account_connections", (window.key, people.member_id)),
        "account_daily_spend": ("account_daily_spend", (people.member_id, to_text(window.start), to_text(window.end))),
    }
    found: dict[str, Any] = {}
    for case, (read, params) in cases.items():
        runs = 3 if read == "usage_app_month" else 7
        ms, rows = target.database.query_ms(read, params, runs)
        found[case] = {"query_ms": ms, "rows": rows, "plan": target.database.explain(read, params)}
        if read == "usage_app_page" and isinstance(target.database, PostgresDatabase):
            found[case]["plan_generic"] = target.database.explain(read, params, generic=True)
        log(f"    {case:<28} {ms:9.2f} ms alone ({rows} rows)")
    return found


# ---------------------------------------------------------------- the proxy, big vs empty


def _write_bytes(server: Server) -> int:
    """Bytes the server's processes caused to be written to storage (`/proc/<pid>/io`, write_bytes)."""
    total = 0
    for pid in server.tree():
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def proxy_rounds(targets: list[Served], tmp: Path, rounds: int, seconds: float, users: int) -> list[dict[str, Any]]:
    """wrk at c=32 on each server in turn, rounds alternating which goes first; one record per run."""
    runs: list[dict[str, Any]] = []
    scripts: dict[str, Path] = {}
    for served in targets:
        target = _target(served)
        scripts[served.label] = tmp / f"wrk-{served.label}.lua"
        scripts[served.label].write_text(wrk_script(target, stream=False, users=users))
    for rnd in range(-1, rounds):  # round -1: a warm-up (and the empty database's users connect)
        order = targets if rnd % 2 == 0 else targets[::-1]
        for served in order:
            postgres = served.database if isinstance(served.database, PostgresDatabase) else None
            cpu, written = served.server.cpu(), _write_bytes(served.server)
            wal, stored = (postgres.wal_position(), postgres.database_bytes()) if postgres else (0, 0)
            url = f"{served.base}/api/v1/chat/completions"
            result = run_wrk(scripts[served.label], url, connections=32, seconds=3 if rnd < 0 else seconds, threads=2)
            if result.failed:
                raise RuntimeError(f"{served.label}: wrk errors {result.errors}\n{served.server.log_tail()}")
            if rnd < 0:
                continue
            count = max(result.requests, 1)
            record = {
                "round": rnd,
                "target": served.label,
                "requests": result.requests,
                "rps": result.rps,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "cpu_ms_per_request": 1000 * (served.server.cpu() - cpu) / count,
                "process_write_bytes_per_request": (_write_bytes(served.server) - written) / count,
                # PostgreSQL only: SQLite's file and WAL sizes move with checkpoints, not with each write.
                "database_growth_bytes_per_request": (postgres.database_bytes() - stored) / count if postgres else None,
                "wal_bytes_per_request": (postgres.wal_position() - wal) / count if postgres else None,
                "sqlite_wal_file_bytes": served.database.wal_file_bytes()
                if isinstance(served.database, SqliteDatabase)
                else None,
            }
            runs.append(record)
            log(
                f"  round {rnd} {served.label:<22} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f}  "
                f"p99 {result.p99_ms:7.2f} ms  cpu {record['cpu_ms_per_request']:.3f} ms/req"
            )
    return runs


def _target(served: Served) -> Target:
    headers = {"Authorization": f"Bearer {served.secret}"}
    model = standin.MODEL
    return Target(served.label, served.port, "/api/v1/chat/completions", model, model, headers, "Wattfare-User")


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
        asyncio.run(_admin(args.postgres_url, *drops, *(f"CREATE DATABASE {name}" for name in names)))
        urls = [_postgres_url(args.postgres_url, name) for name in DATABASES]
        databases = [PostgresDatabase(url) for url in urls]
    _, empty_secret = _provision(urls[1])
    if reuse:
        found = json.loads(kept.read_text())
        if (found["rows"], found["users"]) != (size.rows, size.users):
            raise SystemExit(f"{kept} holds {found['rows']:,} rows over {found['users']:,} users, not {size}")
        log(f"{engine}: reusing the big database kept by an earlier run ({found['rows']:,} rows)")
        return Seeded(urls, databases, found["app_id"], found["secret"], empty_secret, found.get("seed_seconds"))
    app_id, secret = _provision(urls[0])
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
            asyncio.run(_admin(args.postgres_url, *(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)" for n in DATABASES)))
    return result


def time_status(big: Served, empty: Served, people: Population, samples: int) -> dict[str, Any]:
    """`/status` of random users on the big database and on the empty one, request by request in turn.

    Taking turns puts the machine's noise on both alike: the empty database is the floor the big one is read
    against (its users are unknown to it, which costs the same one index lookup).
    """
    rng = random.Random(11)
    users = [f"bench-{rng.randrange(people.main_user_count)}" for _ in range(samples + 20)]
    times: dict[str, list[float]] = {"big": [], "empty": []}
    with (
        httpx.Client(base_url=big.base, headers={"Authorization": f"Bearer {big.secret}"}) as on_big,
        httpx.Client(base_url=empty.base, headers={"Authorization": f"Bearer {empty.secret}"}) as on_empty,
    ):
        for index, user in enumerate(users):
            for kind, client in (("big", on_big), ("empty", on_empty)):
                started = time.perf_counter()
                response = client.get("/api/v1/status", params={"appUserId": user})
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"GET /status on {kind} answered {response.status_code}: {response.text[:300]}")
                if index >= 20:
                    times[kind].append(elapsed)
    return {kind: {**_summary(found), "statuses": {"200": len(found)}} for kind, found in times.items()}


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
