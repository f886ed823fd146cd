"""Wattfare on PostgreSQL: database round trips per request, and throughput of one vs two instances on one database.

    .venv/bin/python benchmarks/pg_scale.py            # all three parts, full size (~4 minutes)
    .venv/bin/python benchmarks/pg_scale.py --quick    # a smoke test of each part (~1 minute), noisy
    .venv/bin/python benchmarks/pg_scale.py --parts trips,whatif

Everything runs on 127.0.0.1 against the PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth), in a
database of its own (`bench_pg`) created at the start and dropped at the end; every process it starts is stopped
by its PID.

trips       `wattfare serve` talks to PostgreSQL through `pg_wire_counter.WireCounter`, a relay that reads the
            client's protocol messages: round trips and statements per proxied request, by database call
            (budget read, reserve, settle, the pool's reset, other), for a known user (non-streamed and
            streamed), a new user's first request, and the first request of a new month window. The background
            loops' traffic in an idle period as long as the requests took is subtracted. The server's own
            `wattfare_store_duration_seconds` counts (from /metrics) cross-check the relay.
throughput  wrk at c=32 on one instance, at c=16 on each of two instances (two wrk processes at once), and at
            c=32 on one instance with `--workers 2`; all on one database, interleaved rounds, medians. CPU per
            request of the Wattfare processes, of the database's own backends (found in pg_stat_activity), of
            PostgreSQL's WAL writer/checkpointer/background writer, of nginx and of wrk.
whatif      the proposal measured before anyone edits the server: metering cycles (budget read, reserve,
            settle) run in this process on the store as shipped, then with the pool's reset query off, then
            with a one-statement reserve and a one-statement settle (a data-modifying CTE and a PL/pgSQL
            function, created in the benchmark's own database the way a migration would), each with their
            round trips counted through the relay.

Results: benchmarks/results/pg_scale.json, and a markdown summary printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pg_one_trip
import standin
from load import Target, WrkResult, request_body, run_wrk, wrk_script
from pg_wire_counter import WireCounter, empty_tally, tally
from processes import Server, cpu_seconds, free_port, start_time, stop_all, system_busy_seconds
from servers import HERE, RETRY, log, probe_json, start_nginx, start_wattfare, wattfare_env

PG_HOST, PG_PORT = "127.0.0.1", 5432
DATABASE = "bench_pg"
METRICS_TOKEN = "bench-pg-metrics"
CAP_USD = "1000000"  # test users auto-connect with this cap: the benchmark never reaches it
USERS = 1000  # throughput runs spread requests over this many end users
OUT = HERE / "results" / "pg_scale.json"
CHAT_PATH = "/api/v1/chat/completions"
MAIN_CALLS = ("budget read", "reserve", "settle")


# ---------------------------------------------------------------- the database


def psql(sql: str, database: str = "postgres") -> str:
    command = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", database, "-AtX"]
    done = subprocess.run(
        [*command, "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def database_url(port: int = PG_PORT, database: str = DATABASE) -> str:
    return f"postgresql://postgres@{PG_HOST}:{port}/{database}"


@contextlib.contextmanager
def own_database(name: str = DATABASE) -> Iterator[None]:
    """Create `name` (`bench_pg`; dropping one a failed run left behind) and drop it at the end."""
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        stop_all()  # its clients first, so the drop finds nobody connected
        try:
            psql(f"DROP DATABASE IF EXISTS {name}")
        except RuntimeError as exc:
            log(f"could not drop {name}: {exc}")


def provision(url: str) -> tuple[str, str]:
    """Migrate the database and create an app with test keys; (its id, its test secret key)."""
    from tests.support.wattfare_server import provision as provision_app

    made = provision_app(url, "Benchmark app", CAP_USD, modes=("test",))
    return made.app.id, made.secret_keys["test"]


def postgres_settings() -> dict[str, str]:
    names = ("server_version", "max_connections", "synchronous_commit", "fsync", "shared_buffers", "wal_level")
    return {name: psql(f"SHOW {name}").strip() for name in names}


# ---------------------------------------------------------------- PostgreSQL's CPU


def backend_pids(database: str = DATABASE) -> list[int]:
    """The server processes serving connections to our database (pg_stat_activity), not anyone else's."""
    out = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'")
    return [int(line) for line in out.split()]


def auxiliary_pids() -> list[int]:
    """PostgreSQL's WAL writer, checkpointer and background writer: shared by every database on the server."""
    wanted = ("walwriter", "checkpointer", "background writer")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            # "postgres: walwriter", or on Debian "postgres: 15/main: walwriter"
            if command.startswith("postgres: ") and command.endswith(wanted):
                found.append(int(entry.name))
    return found


class PostgresCpu:
    """CPU seconds of our database's backends (and the shared auxiliary processes) between two readings.

    Backends are named by PID and start time, so a PID reused by another process is never charged; a backend
    that exits between the readings loses its CPU from the count (`lost` says how many did).
    """

    def __init__(self, database: str = DATABASE) -> None:
        self.database = database
        self.backends = {pid: start_time(pid) for pid in backend_pids(database)}
        self.before = {pid: cpu_seconds([pid]) for pid in self.backends}
        self.aux = auxiliary_pids()
        self.aux_before = cpu_seconds(self.aux)

    def read(self) -> dict[str, float]:
        now = {pid: start_time(pid) for pid in backend_pids(self.database)}
        backends = 0.0
        lost = 0
        for pid, started in (self.backends | now).items():
            if start_time(pid) != started:
                lost += 1
                continue
            backends += cpu_seconds([pid]) - (self.before.get(pid, 0.0) if pid in self.backends else 0.0)
        return {"backends": backends, "aux": cpu_seconds(self.aux) - self.aux_before, "lost": lost}


# ---------------------------------------------------------------- Wattfare on PostgreSQL


def start_wattfare_pg(tmp: Path, name: str, upstream: str, url: str, secret: str, workers: int) -> tuple[Server, int]:
    """`wattfare serve` as `servers.start_wattfare` runs it, but on `url` (already provisioned) and with /metrics."""
    from tests.support.wattfare_server import serve_command

    port = free_port()
    env = wattfare_env(url, port, upstream, CAP_USD, WATTFARE_METRICS_TOKEN=METRICS_TOKEN)
    server = Server(name, serve_command(port, workers), tmp / f"{name}.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": "bench-user"}
    server.wait_ready(lambda: probe_json(port, CHAT_PATH, headers), 60, RETRY)
    return server, port


def store_calls(port: int) -> dict[str, float]:
    """`wattfare_store_duration_seconds` count and sum by operation, from the server's /metrics."""
    text = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("wattfare_store_duration_seconds_") and not line.startswith(
            "wattfare_store_duration_seconds_bucket"
        ):
            name, value = line.rsplit(" ", 1)
            what = name.removeprefix("wattfare_store_duration_seconds_")  # count{operation="read"}
            found[what.replace('{operation="', ":").rstrip('"}')] = float(value)
    return found


def chat(client: httpx.Client, port: int, secret: str, user: str, *, stream: bool) -> None:
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": user, "content-type": "application/json"}
    if stream:
        headers["accept"] = "text/event-stream"
    response = client.post(
        f"http://127.0.0.1:{port}{CHAT_PATH}", content=request_body(standin.MODEL, stream=stream), headers=headers
    )
    if response.status_code != 200:
        raise RuntimeError(f"request for {user} answered {response.status_code}: {response.text[:300]}")


# ---------------------------------------------------------------- part 1: round trips per request


def per_request(
    busy: dict[str, dict[str, Any]], idle: dict[str, dict[str, Any]], requests: int, idle_share: float
) -> dict[str, Any]:
    """(busy - idle x idle_share) / requests for each call and field; the statement sequences seen while busy.

    `idle_share` is the busy period's length over the idle period's: the idle traffic scaled to the busy period.
    """
    out: dict[str, Any] = {}
    for call in sorted(set(busy) | set(idle)):
        b, i = busy.get(call, empty_tally()), idle.get(call, empty_tally())
        row = {field: (b[field] - i[field] * idle_share) / requests for field in b if field != "sequences"}
        row["round_trips_with_reset"] = row["round_trips"] + row["reset_round_trips"]
        row["idle_calls_scaled"] = i["calls"] * idle_share
        row["sequences"] = dict(b["sequences"].most_common(3))
        out[call] = row
    return out


def measure_scenario(
    counter: WireCounter, port: int, name: str, requests: int, send: Callable[[int], None], metrics_reads: float
) -> dict[str, Any]:
    """Send `requests` requests, then stay idle as long; round trips per request by database call."""
    time.sleep(0.5)  # what the previous scenario left (a settle, a poll) lands outside both windows
    metrics_before = store_calls(port)
    busy_start = time.monotonic()
    for index in range(requests):
        send(index)
    busy_end = time.monotonic()
    metrics_after = store_calls(port)
    time.sleep(0.5)
    # The loops poll once a second or so: an idle period of at least 5 s keeps their rate from being a guess.
    idle_start = time.monotonic()
    time.sleep(max(5.0, busy_end - busy_start))
    idle_end = time.monotonic()
    units = counter.units()
    busy = tally([u for u in units if busy_start <= u.ended <= busy_end])
    idle = tally([u for u in units if idle_start <= u.ended <= idle_end])
    calls = per_request(busy, idle, requests, (busy_end - busy_start) / (idle_end - idle_start))
    metrics = {
        # The reading after the requests did a read of its own (the holds census): not the requests'.
        key: (metrics_after.get(key, 0.0) - value - (metrics_reads if key == "count:read" else 0.0)) / requests
        for key, value in metrics_before.items()
        if key.startswith(("count:", "sum:"))
    }
    total = {
        field: sum(row[field] for row in calls.values())
        for field in ("round_trips_with_reset", "statements", "transaction_control", "prepares")
    }
    result = {
        "requests": requests,
        "seconds": busy_end - busy_start,
        "calls": calls,
        "total": total,
        "store_calls_per_request": metrics,
    }
    log(f"  {name:<40} {total['round_trips_with_reset']:5.2f} round trips/request, {total['statements']:.2f} stmts")
    return result


def part_trips(tmp: Path, upstream: str, app_secret: str, requests: int) -> dict[str, Any]:
    counter = WireCounter(PG_HOST, PG_PORT)
    relay_port = counter.start()
    try:
        server, port = start_wattfare_pg(tmp, "wattfare-relayed", upstream, database_url(relay_port), app_secret, 1)
        try:
            return _trip_scenarios(counter, port, app_secret, requests)
        finally:
            server.stop()
    finally:
        counter.stop()


def _trip_scenarios(counter: WireCounter, port: int, secret: str, requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        for index in range(20):  # every statement prepared on the pool's connections before anything is counted
            chat(client, port, secret, "known", stream=index % 2 == 1)
        # A /metrics reading reads the database itself (the holds census): counted, to take it off the requests'.
        first, second = store_calls(port), store_calls(port)
        results["metrics_read_store_calls"] = {k: second.get(k, 0) - v for k, v in first.items() if "count" in k}
        reads = results["metrics_read_store_calls"].get("count:read", 0.0)

        def known(stream: bool) -> Callable[[int], None]:
            return lambda _: chat(client, port, secret, "known", stream=stream)

        log("round trips per request, through the relay")
        results["known user, non-streamed"] = measure_scenario(
            counter, port, "known user", requests, known(False), reads
        )
        results["known user, streamed"] = measure_scenario(
            counter, port, "known user, streamed", requests, known(True), reads
        )

        def new_user(index: int) -> None:
            chat(client, port, secret, f"new-{index}", stream=False)

        results["first request of a new user"] = measure_scenario(
            counter, port, "first request of a new user", requests, new_user, reads
        )
        # A new month: the same users' counters rows moved to a past window (on a direct connection, not counted),
        # so each user's next request is the first of its window, as on the 1st of the month.
        psql(
            "UPDATE counters SET window_key = 'past-' || window_key WHERE connection_id IN "
            "(SELECT id FROM connections WHERE app_user_id LIKE 'new-%')",
            DATABASE,
        )
        results["first request of a new window"] = measure_scenario(
            counter, port, "first request of a new window", requests, new_user, reads
        )
    return results


# ---------------------------------------------------------------- part 2: throughput, one vs two instances


def _wrk_many(scripts: list[tuple[Path, int, int]], seconds: float) -> list[WrkResult]:
    """wrk processes at once, one per (script, port, connections); each with 2 threads."""

    def one(job: tuple[Path, int, int]) -> WrkResult:
        script, port, connections = job
        return run_wrk(
            script, f"http://127.0.0.1:{port}{CHAT_PATH}", connections=connections, seconds=seconds, threads=2
        )

    with ThreadPoolExecutor(len(scripts)) as pool:
        return list(pool.map(one, scripts))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_deployment(
    name: str, servers: list[Server], ports: list[int], connections: int, nginx: Server, script: Path, seconds: float
) -> dict[str, Any]:
    """One measured run: wrk on each port at once (`connections` each); rates, latency and CPU per request."""
    postgres = PostgresCpu()
    wattfare_before = sum(s.cpu() for s in servers)
    nginx_before = nginx.cpu()
    busy_before = system_busy_seconds()
    children_before = _children_cpu()  # the wrk processes, once reaped
    started = time.monotonic()
    results = _wrk_many([(script, port, connections) for port in ports], seconds)
    elapsed = time.monotonic() - started
    wrk_cpu = _children_cpu() - children_before
    busy = system_busy_seconds() - busy_before
    nginx_cpu = nginx.cpu() - nginx_before
    wattfare_cpu = sum(s.cpu() for s in servers) - wattfare_before
    pg = postgres.read()
    errors = sum(r.failed for r in results)
    if errors:
        raise RuntimeError(f"{name}: wrk reported errors: {[r.errors for r in results]}")
    requests = sum(r.requests for r in results)
    rps = sum(r.rps for r in results)
    per = 1000 / max(1, requests)
    ours = wattfare_cpu + pg["backends"] + pg["aux"] + nginx_cpu + wrk_cpu
    row: dict[str, Any] = {
        "rps": rps,
        "rps_per_instance": [r.rps for r in results],
        "p50_ms": max(r.p50_ms for r in results),
        "p99_ms": max(r.p99_ms for r in results),
        "cpu_ms_per_request": {
            "wattfare": wattfare_cpu * per,
            "postgres_backends": pg["backends"] * per,
            "postgres_aux": pg["aux"] * per,
            "nginx": nginx_cpu * per,
            "wrk": wrk_cpu * per,
        },
        "cpu_ms_per_request_total": ours * per,
        # Requests per second of CPU used by everything taking part: robust to how much of the machine we got.
        "rps_per_core": requests / ours if ours else 0.0,
        "cores": {"ours": ours / elapsed, "machine": busy / elapsed, "other_work": max(0.0, busy - ours) / elapsed},
        "backends_lost": pg["lost"],
    }
    cpu = row["cpu_ms_per_request"]
    log(
        f"  {name:<26} {rps:8.1f} req/s  p50 {row['p50_ms']:6.2f}  p99 {row['p99_ms']:7.2f} ms  "
        f"cpu/req wattfare {cpu['wattfare']:.3f} pg {cpu['postgres_backends']:.3f} ms  "
        f"cores {row['cores']['ours']:.2f} of {row['cores']['machine']:.2f}"
    )
    return row


def part_throughput(
    tmp: Path, upstream: str, secret: str, nginx: Server, rounds: int, seconds: float
) -> dict[str, Any]:
    url = database_url()
    a, a_port = start_wattfare_pg(tmp, "wattfare-a", upstream, url, secret, 1)
    b, b_port = start_wattfare_pg(tmp, "wattfare-b", upstream, url, secret, 1)
    w, w_port = start_wattfare_pg(tmp, "wattfare-2workers", upstream, url, secret, 2)
    # For reference, in the same minutes: Wattfare as `run.py` measures it, on its SQLite file.
    s, s_port, s_secret = start_wattfare(tmp, "wattfare-sqlite", upstream, 1, None)
    pg_script, sqlite_script = tmp / "wrk-pg.lua", tmp / "wrk-sqlite.lua"
    for script, key in ((pg_script, secret), (sqlite_script, s_secret)):
        target = Target(
            "wattfare",
            a_port,
            CHAT_PATH,
            standin.MODEL,
            standin.MODEL,
            headers={"Authorization": f"Bearer {key}"},
            user_header="Wattfare-User",
        )
        script.write_text(wrk_script(target, stream=False, users=USERS))
    deployments: dict[str, tuple[list[Server], list[int], int, Path]] = {
        "1 instance (c=32)": ([a], [a_port], 32, pg_script),
        "2 instances (c=16 + 16)": ([a, b], [a_port, b_port], 16, pg_script),
        "1 instance, 2 workers (c=32)": ([w], [w_port], 32, pg_script),
        "SQLite, 1 instance (c=32), for reference": ([s], [s_port], 32, sqlite_script),
    }
    try:
        log("warm-up: every user connected, every process's pool and statements warm")
        _wrk_many([(pg_script, a_port, 16)], 3)
        _wrk_many([(pg_script, port, 16) for port in (a_port, b_port, w_port)], 2)
        _wrk_many([(sqlite_script, s_port, 16)], 3)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in deployments}
        names = list(deployments)
        for rnd in range(rounds):
            log(f"round {rnd + 1}/{rounds}")
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                servers, ports, connections, script = deployments[name]
                runs[name].append(run_deployment(name, servers, ports, connections, nginx, script, seconds))
    finally:
        for server in (a, b, w, s):
            server.stop()  # their background loops would add to the what-if's database CPU
    return {
        "runs": runs,
        "median": {name: median_row(rows) for name, rows in runs.items()},
        "books": books(),
    }


def books() -> dict[str, int]:
    """Whether the instances kept the books together: each counters row equal to its ledger and holds.

    The round-trip part moved some users' rows to a past window on purpose (`new-*`): they are left out.
    """
    unbalanced = psql(
        "SELECT COUNT(*) FROM counters n JOIN connections c ON c.id = n.connection_id "
        "WHERE c.app_user_id LIKE 'bench-%' AND (n.spent != (SELECT COALESCE(SUM(amount), 0) FROM ledger l "
        "WHERE l.connection_id = n.connection_id AND l.window_key = n.window_key) OR n.reserved != "
        "(SELECT COALESCE(SUM(amount), 0) FROM holds h WHERE h.connection_id = n.connection_id "
        "AND h.window_key = n.window_key))",
        DATABASE,
    )
    rows = psql(
        "SELECT COUNT(*) FROM counters n JOIN connections c ON c.id = n.connection_id "
        "WHERE c.app_user_id LIKE 'bench-%'",
        DATABASE,
    )
    holds = psql("SELECT COUNT(*) FROM holds", DATABASE)
    ledger = psql("SELECT COUNT(*) FROM ledger", DATABASE)
    return {
        "counters_rows_checked": int(rows),
        "unbalanced_counters_rows": int(unbalanced),
        "holds_left": int(holds),
        "ledger_rows": int(ledger),
    }


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over rounds of every number in the rows (nested dicts alike)."""
    first = rows[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = median_row([r[key] for r in rows])
        elif isinstance(value, list):
            out[key] = [statistics.median(r[key][i] for r in rows) for i in range(len(value))]
        else:
            out[key] = statistics.median(r[key] for r in rows)
    return out


# ---------------------------------------------------------------- the report


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    trips = results.get("trips")
    if trips:
        lines += [
            "Round trips per request (statements in brackets; BEGIN/COMMIT counted apart), background loops' idle "
            "traffic subtracted; each call's round trips include the pool's reset query after it.",
            "",
            "| request | budget read | reserve | settle | other | total round trips | statements | BEGIN/COMMIT |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for scenario, data in trips.items():
            if not isinstance(data, dict) or "calls" not in data:
                continue
            calls = data["calls"]

            def cell(name: str, calls: dict[str, Any] = calls) -> str:
                row = calls.get(name)
                if row is None:
                    return "0"
                return f"{row['round_trips_with_reset']:.2f} ({row['statements']:.2f})"

            other_rt = sum(r["round_trips_with_reset"] for k, r in calls.items() if k not in MAIN_CALLS)
            other_st = sum(r["statements"] for k, r in calls.items() if k not in MAIN_CALLS)
            total = data["total"]
            lines.append(
                f"| {scenario} | {cell('budget read')} | {cell('reserve')} | {cell('settle')} | "
                f"{other_rt:.2f} ({other_st:.2f}) | {total['round_trips_with_reset']:.2f} | "
                f"{total['statements']:.2f} | {total['transaction_control']:.2f} |"
            )
        lines += ["", "The other calls, round trips per request (statements):", ""]
        for scenario, data in trips.items():
            if isinstance(data, dict) and "calls" in data:
                others = [
                    f"{call} {row['round_trips_with_reset']:.2f} ({row['statements']:.2f})"
                    for call, row in data["calls"].items()
                    if call not in MAIN_CALLS and abs(row["round_trips_with_reset"]) >= 0.005
                ]
                lines.append(f"- {scenario}: {'; '.join(others) or 'none'}")
        lines.append("")
    throughput = results.get("throughput")
    if throughput:
        lines += [
            "Throughput on one PostgreSQL database, non-streamed, 1,000 users (median of rounds).",
            "",
            "| deployment | req/s | per instance | p50 / p99 ms | CPU ms/req: Wattfare | PG backends | PG aux | nginx "
            "| wrk | all | req/s per core used | cores used: ours / others |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in throughput["median"].items():
            cpu = row["cpu_ms_per_request"]
            per = " + ".join(f"{v:,.0f}" for v in row["rps_per_instance"])
            lines.append(
                f"| {name} | {row['rps']:,.0f} | {per} | {row['p50_ms']:.2f} / {row['p99_ms']:.2f} | "
                f"{cpu['wattfare']:.3f} | {cpu['postgres_backends']:.3f} | {cpu['postgres_aux']:.3f} | "
                f"{cpu['nginx']:.3f} | {cpu['wrk']:.3f} | {row['cpu_ms_per_request_total']:.3f} | "
                f"{row['rps_per_core']:,.0f} | {row['cores']['ours']:.2f} / {row['cores']['other_work']:.2f} |"
            )
        lines += ["", f"Books after the throughput runs: {throughput['books']}.", ""]
    whatif = results.get("whatif")
    if whatif:
        lines += pg_one_trip.markdown(whatif)
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--parts", default="trips,throughput,whatif", help="comma-separated: trips,throughput,whatif")
    parser.add_argument("--requests", type=int, help="requests per round-trip scenario (default 200; quick 30)")
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 5; quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 5; quick 2)")
    parser.add_argument("--whatif-rounds", type=int, help="what-if rounds (default 5; quick 1)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    requests = args.requests or (30 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "platform": platform.platform()},
        "python": sys.version.split()[0],
        "parameters": {"requests": requests, "rounds": rounds, "seconds": seconds, "quick": args.quick},
    }
    with tempfile.TemporaryDirectory(prefix="pg-scale-") as tmp_name, own_database():
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers run as nobody and read the stream file from here
        results["postgres"] = postgres_settings()
        app_id, secret = provision(database_url())
        nginx, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        try:
            if "trips" in parts:
                results["trips"] = part_trips(tmp, upstream, secret, requests)
            if "throughput" in parts:
                results["throughput"] = part_throughput(tmp, upstream, secret, nginx, rounds, seconds)
            if "whatif" in parts:
                cycles = 40 if args.quick else 300
                whatif_rounds = args.whatif_rounds or (1 if args.quick else 5)
                results["whatif"] = asyncio.run(
                    pg_one_trip.compare(database_url(), app_id, PostgresCpu, cycles=cycles, rounds=whatif_rounds)
                )
        finally:
            stop_all()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(markdown(results))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
