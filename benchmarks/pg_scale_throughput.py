"""Part 2 of `pg_scale.py`: throughput of one vs two Wattfare instances (and two workers) on one database.

wrk runs in interleaved rounds, with the CPU per request of Wattfare, of the database's backends and shared
processes, of nginx and of wrk; then whether the instances kept the books together.
"""

from __future__ import annotations

import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import standin
from load import Target, WrkResult, run_wrk, wrk_script
from pg_scale_cpu import PostgresCpu
from pg_scale_database import DATABASE, database_url, psql
from pg_scale_wattfare import CHAT_PATH, start_wattfare_pg
from processes import Server, system_busy_seconds
from servers import log, start_wattfare

USERS = 1000  # throughput runs spread requests over this many end users


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
