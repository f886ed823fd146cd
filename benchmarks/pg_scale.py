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
import json
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pg_one_trip
from pg_scale_cpu import PostgresCpu
from pg_scale_database import database_url, own_database, postgres_settings
from pg_scale_report import markdown
from pg_scale_throughput import part_throughput
from pg_scale_trips import part_trips
from pg_scale_wattfare import provision
from processes import stop_all
from servers import HERE, log, start_nginx

OUT = HERE / "results" / "pg_scale.json"

# Its parts, one concept each: the database (pg_scale_database), PostgreSQL's CPU (pg_scale_cpu), Wattfare on
# it (pg_scale_wattfare), the round trips (pg_scale_trips), the throughput (pg_scale_throughput) and the report
# (pg_scale_report); the what-if is pg_one_trip's.


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
