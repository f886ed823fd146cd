"""What each change bought: Wattfare as of several git revisions, measured side by side in one run.

Each revision is checked out into a temporary worktree and served by `wattfare serve` with that tree's
sources first on PYTHONPATH (same virtualenv, same settings, same nginx stand-in). Rounds interleave the
revisions, so machine noise falls on all of them alike. Per revision, medians over rounds:

    CPU ms per request and req/s at c=32 (non-streamed and streamed), added p50 / p99 at c=1 (wrk),
    and added streamed time-to-first-byte p50 / p99 at c=1 (raw-socket client), all against nginx direct.

Each revision has a database of its own, migrated and provisioned by that revision's own code (a process with
its sources and its `tests.support` first on the path), so a revision never runs on a schema it does not know:
a fresh SQLite file (the default), or with `--database postgresql` a fresh database `ab_<n>` on the
PostgreSQL server at 127.0.0.1:5432 (user postgres), created at the start and dropped at the end. On
PostgreSQL the CPU of that database's backends per request is reported beside Wattfare's (pg_scale's reading).

Run: `.venv/bin/python benchmarks/ab.py 56d9690 HEAD~2 HEAD` (revisions as git understands them; the
working tree itself is `.`). Writes `results/ab.json` unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import standin
from load import Target, measure_ttfb, wrk_cpu
from pg_scale_cpu import PostgresCpu
from pg_scale_database import database_url, own_database, psql
from pg_scale_wattfare import CAP_USD, start_wattfare_pg
from processes import Server, stop_all
from servers import HERE, ROOT, child_env, log, start_nginx

SOURCES = "packages/wattfare-core/src"
# Provisions the database named by argv[1] with the code on the path (the revision's) and prints its test secret.
_PROVISION = (
    "import sys; from tests.support.wattfare_server import provision; "
    "print(provision(sys.argv[1], 'Benchmark app', sys.argv[2], modes=('test',)).secret_keys['test'])"
)


def worktree(revision: str, tmp: Path) -> Path:
    """The wattfare sources of `revision` (`.` is the working tree as it is)."""
    if revision == ".":
        return ROOT / SOURCES
    target = tmp / f"tree-{len(list(tmp.glob('tree-*')))}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(target), revision], check=True)
    return target / SOURCES


def provision(sources: Path, url: str) -> str:
    """Migrate `url` and create the benchmark's app with the revision's own code; its test secret key.

    Not in this process: its `wattfare` is the working tree's, whose migrations an older revision's database
    must not get. The revision's tree (the directory holding `tests/`) is the child's working directory.
    """
    tree = sources.parents[2]  # SOURCES is three levels down
    done = subprocess.run(
        [sys.executable, "-c", _PROVISION, url, CAP_USD],
        cwd=tree,
        env=child_env(PYTHONPATH=str(sources)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"provisioning {url} with {tree} failed:\n{done.stderr[-2000:]}")
    return done.stdout.split()[-1]


def serve(revision: str, sources: Path, url: str, upstream: str, tmp: Path) -> tuple[Server, Target]:
    secret = provision(sources, url)
    os.environ["PYTHONPATH"] = str(sources)  # read by child_env: the server imports this revision's wattfare
    try:
        server, port = start_wattfare_pg(tmp, f"wattfare-{revision.replace('/', '_')}", upstream, url, secret, 1)
    finally:
        del os.environ["PYTHONPATH"]
    target = Target(
        revision,
        port,
        "/api/v1/chat/completions",
        standin.MODEL,
        standin.MODEL,
        headers={"Authorization": f"Bearer {secret}"},
        user_header="Wattfare-User",
        server=revision,
    )
    return server, target


def measure(
    server: Server,
    target: Target,
    *,
    stream: bool,
    connections: int,
    seconds: float,
    tmp: Path,
    database: str | None = None,
) -> dict[str, float]:
    """One wrk run; with `database` (a PostgreSQL database's name) also its backends' CPU per request."""
    postgres = PostgresCpu(database) if database else None
    result = wrk_cpu(
        server,
        target,
        stream=stream,
        users=1000 if target.user_header else 1,
        connections=connections,
        seconds=seconds,
        tmp=tmp,
    )
    if postgres is not None:
        pg = postgres.read()
        requests = result["rps"] * seconds  # wrk_cpu returns wrk's rate, not its count: near enough (±1 %)
        result["pg_backends_cpu_ms_per_request"] = 1000 * pg["backends"] / max(1.0, requests)
        # WAL writer, checkpointer, background writer: shared with every database on the server.
        result["pg_aux_cpu_ms_per_request"] = 1000 * pg["aux"] / max(1.0, requests)
        result["pg_backends_lost"] = pg["lost"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions to compare ('.' = the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--ttfb-requests", type=int, default=150)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="each revision on a fresh SQLite file, or on a fresh PostgreSQL database ab_<n> at 127.0.0.1:5432",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ab.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wattfare-ab-"))
    tmp.chmod(0o755)  # nginx's workers run as nobody and read the stream file from here
    rows: dict[str, dict[str, list[float]]] = {revision: {} for revision in args.revisions}
    direct: dict[str, list[float]] = {}
    postgres = args.database == "postgresql"
    # Revision -> its PostgreSQL database's name (None on SQLite), and its schema version once served.
    databases = {revision: f"ab_{index}" if postgres else None for index, revision in enumerate(args.revisions)}
    schema: dict[str, str] = {}
    with contextlib.ExitStack() as databases_dropped:
        for name in databases.values():
            if name:
                databases_dropped.enter_context(own_database(name))  # dropped at the end, also on failure
        try:
            _run(args, tmp, databases, schema, rows, direct)
        finally:
            stop_all()
            for tree in tmp.glob("tree-*"):
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
            shutil.rmtree(tmp, ignore_errors=True)

    summary = _summarise(rows, direct)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "revisions": args.revisions,
        "database": args.database,
        "schema_versions": schema,
        "summary": summary,
        "runs": rows,
        "direct": direct,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(summary))
    print()
    print(_spread(rows))
    return 0


def _run(
    args: argparse.Namespace,
    tmp: Path,
    databases: dict[str, str | None],
    schema: dict[str, str],
    rows: dict[str, dict[str, list[float]]],
    direct: dict[str, list[float]],
) -> None:
    """Serve every revision, warm them, then the interleaved rounds; fills `rows`, `direct` and `schema`."""
    nginx, nginx_port = start_nginx(tmp)
    upstream = f"http://127.0.0.1:{nginx_port}/v1"
    model = standin.MODEL
    nginx_target = Target("direct", nginx_port, "/v1/chat/completions", model, model, server="nginx")
    servers = {}
    latest = "SELECT MAX(version) FROM schema_migrations"  # the revision's last migration, as it applied them
    for revision in args.revisions:
        name = databases[revision]
        sqlite_file = tmp / f"ab-{len(servers)}.db"
        url = database_url(database=name) if name else f"sqlite:///{sqlite_file}"
        servers[revision] = serve(revision, worktree(revision, tmp), url, upstream, tmp)
        if name:
            schema[revision] = psql(latest, name).strip()
        else:
            with contextlib.closing(sqlite3.connect(sqlite_file)) as db:
                schema[revision] = str(db.execute(latest).fetchone()[0])
        log(f"serving {revision} on :{servers[revision][1].port} over {url} (schema version {schema[revision]})")
    # Warm every server (connections, caches, the price book); on PostgreSQL long enough for all 1,000 users'
    # first requests (the transaction path) to fall before the rounds.
    for server, target in servers.values():
        measure(server, target, stream=False, connections=8, seconds=3 if any(databases.values()) else 1, tmp=tmp)
    for round_index in range(args.rounds):
        turn = round_index % len(args.revisions)
        order = args.revisions[turn:] + args.revisions[:turn]
        c1 = measure(nginx, nginx_target, stream=False, connections=1, seconds=args.duration, tmp=tmp)
        _add(direct, {"p50_ms": c1["p50_ms"], "p99_ms": c1["p99_ms"]})
        for revision in order:
            server, target = servers[revision]
            runs = {
                name: measure(
                    server,
                    target,
                    stream=stream,
                    connections=connections,
                    seconds=args.duration,
                    tmp=tmp,
                    database=databases[revision],
                )
                for name, stream, connections in (("json32", False, 32), ("stream32", True, 32), ("json1", False, 1))
            }
            json32, stream32, json1 = runs["json32"], runs["stream32"], runs["json1"]
            values = {
                "cpu_ms_json_c32": json32["cpu_ms_per_request"],
                "rps_json_c32": json32["rps"],
                "cpu_ms_stream_c32": stream32["cpu_ms_per_request"],
                "rps_stream_c32": stream32["rps"],
                "p50_ms_c1": json1["p50_ms"],
                "p99_ms_c1": json1["p99_ms"],
            }
            if databases[revision]:
                values |= {
                    "pg_cpu_ms_json_c32": json32["pg_backends_cpu_ms_per_request"],
                    "pg_cpu_ms_stream_c32": stream32["pg_backends_cpu_ms_per_request"],
                    "pg_aux_cpu_ms_json_c32": json32["pg_aux_cpu_ms_per_request"],
                    "pg_aux_cpu_ms_stream_c32": stream32["pg_aux_cpu_ms_per_request"],
                    "pg_backends_lost": sum(run["pg_backends_lost"] for run in runs.values()),
                }
            _add(rows[revision], values)
        ttfb = measure_ttfb([nginx_target, *(target for _, target in servers.values())], args.ttfb_requests)
        for name, into in (("direct", direct), *((revision, rows[revision]) for revision in args.revisions)):
            _add(into, {"ttfb_p50_ms": ttfb[name].ttfb_p50_ms, "ttfb_p99_ms": ttfb[name].ttfb_p99_ms})
        log(f"round {round_index + 1}/{args.rounds} done")


def _add(into: dict[str, list[float]], values: dict[str, float]) -> None:
    for key, value in values.items():
        into.setdefault(key, []).append(value)


def _summarise(rows: dict[str, dict[str, list[float]]], direct: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = {key: statistics.median(values) for key, values in direct.items()}
    summary: dict[str, dict[str, float]] = {}
    for revision, metrics in rows.items():
        median = {key: statistics.median(values) for key, values in metrics.items()}
        summary[revision] = {
            "cpu_ms_json_c32": median["cpu_ms_json_c32"],
            "rps_json_c32": median["rps_json_c32"],
            "cpu_ms_stream_c32": median["cpu_ms_stream_c32"],
            "rps_stream_c32": median["rps_stream_c32"],
            "added_p50_ms_c1": median["p50_ms_c1"] - base["p50_ms"],
            "added_p99_ms_c1": median["p99_ms_c1"] - base["p99_ms"],
            "added_ttfb_p50_ms": median["ttfb_p50_ms"] - base["ttfb_p50_ms"],
            "added_ttfb_p99_ms": median["ttfb_p99_ms"] - base["ttfb_p99_ms"],
        }
        for key in ("pg_cpu_ms_json_c32", "pg_cpu_ms_stream_c32", "pg_aux_cpu_ms_json_c32", "pg_aux_cpu_ms_stream_c32"):
            if key in median:
                summary[revision][key] = median[key]
    return summary


def _table(summary: dict[str, dict[str, float]]) -> str:
    postgres = any("pg_cpu_ms_json_c32" in s for s in summary.values())
    pg_head, pg_rule = (" PostgreSQL backends CPU ms/req c=32 (json / stream) |", "---|") if postgres else ("", "")
    lines = [
        f"| revision | CPU ms/req c=32 (json / stream) |{pg_head} req/s c=32 (json / stream) "
        "| added p50 / p99 ms c=1 | added TTFB p50 / p99 ms |",
        f"|---|---|{pg_rule}---|---|---|",
    ]
    for revision, s in summary.items():
        pg = f" {s['pg_cpu_ms_json_c32']:.3f} / {s['pg_cpu_ms_stream_c32']:.3f} |" if postgres else ""
        lines.append(
            f"| {revision} | {s['cpu_ms_json_c32']:.3f} / {s['cpu_ms_stream_c32']:.3f} |{pg}"
            f" {s['rps_json_c32']:,.0f} / {s['rps_stream_c32']:,.0f} "
            f"| {s['added_p50_ms_c1']:.2f} / {s['added_p99_ms_c1']:.2f} "
            f"| {s['added_ttfb_p50_ms']:.2f} / {s['added_ttfb_p99_ms']:.2f} |"
        )
    return "\n".join(lines)


def _spread(rows: dict[str, dict[str, list[float]]]) -> str:
    """Each revision's lowest and highest round for every metric: how far the medians can be trusted."""
    lines = ["| revision | metric | min | median | max |", "|---|---|---|---|---|"]
    for revision, metrics in rows.items():
        for key, values in metrics.items():
            lines.append(
                f"| {revision} | {key} | {min(values):,.3f} | {statistics.median(values):,.3f} | {max(values):,.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
