"""The SQLite WAL's size limit against the c=1 p99: how often a restart of the WAL may happen under sustained load.

Under back-to-back commits a PASSIVE checkpoint never ends with the whole WAL copied, so the checkpoint thread
restarts it once it is past its limit (`store/sqlite/checkpoints.py`); each restart holds the write lock for a few
milliseconds. This serves the working tree's `wattfare serve` once per limit (the module's constant set before the
server starts; nothing else differs), each on a fresh SQLite file, and runs interleaved rounds of wrk at c=1
(non-streamed, 1,000 users) against each, in the same minutes. Every round is reported, not only the medians:
without a restart the WAL grows for as long as the load lasts, and the p99 with it, which a short run cannot show.

Run: `.venv/bin/python benchmarks/wal_limit.py` (about 4 minutes; `--limits-mb 64 256 1048576`, `--rounds`,
`--seconds`, `--connections`). Writes benchmarks/results/wal_limit.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import standin
from load import Target, run_wrk, wrk_script
from processes import Server, free_port, stop_all
from servers import HERE, RETRY, log, probe_json, provision_wattfare, start_nginx, wattfare_env

# `wattfare serve` with the WAL limit of argv[1] bytes; the engine reads the constant when it is imported.
_SERVE_WITH_LIMIT = (
    "import sys; from wattfare.server.store.sqlite import checkpoints; "
    "checkpoints.JOURNAL_SIZE_LIMIT_BYTES = int(sys.argv[1]); "
    "from wattfare.server.cli.main import main; sys.argv = ['wattfare', *sys.argv[2:]]; main()"
)
CAP_USD = "1000000"


def start(tmp: Path, limit_mb: int, upstream: str) -> tuple[Server, Target, Path]:
    """`wattfare serve` on a fresh SQLite file with a WAL limit of `limit_mb` MB; its target and its WAL's path."""
    name = f"wattfare-{limit_mb}mb"
    db = tmp / f"{name}.db"
    secret = provision_wattfare(db, CAP_USD)
    port = free_port()
    limit = str(limit_mb * 1024 * 1024)
    command = [sys.executable, "-c", _SERVE_WITH_LIMIT, limit, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(name, command, tmp / f"{name}.log", env=wattfare_env(f"sqlite:///{db}", port, upstream, CAP_USD))
    server.start()
    headers = {"Authorization": f"Bearer {secret}"}
    server.wait_ready(
        lambda: probe_json(port, "/api/v1/chat/completions", headers | {"Wattfare-User": "probe"}), 60, RETRY
    )
    target = Target(name, port, "/api/v1/chat/completions", standin.MODEL, standin.MODEL, headers, "Wattfare-User")
    return server, target, Path(f"{db}-wal")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limits-mb", type=int, nargs="+", default=[64, 128, 256, 512, 1024 * 1024])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "wal_limit.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-wal-limit-"))
    rounds: dict[int, list[dict[str, float]]] = {limit: [] for limit in args.limits_mb}
    try:
        _nginx, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        served = {limit: start(tmp, limit, upstream) for limit in args.limits_mb}
        scripts = {}
        for limit, (_server, target, _wal) in served.items():
            scripts[limit] = tmp / f"wrk-{limit}.lua"
            scripts[limit].write_text(wrk_script(target, stream=False, users=1000))
        for index in range(args.rounds):
            for limit, (_server, target, wal) in served.items():
                url = f"http://127.0.0.1:{target.port}{target.path}"
                threads = min(2, args.connections)
                result = run_wrk(
                    scripts[limit], url, connections=args.connections, seconds=args.seconds, threads=threads
                )
                row = {
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "max_ms": result.max_ms,
                    "rps": result.rps,
                    "errors": result.failed,
                    "wal_mb_after": wal.stat().st_size / 2**20 if wal.exists() else 0.0,
                }
                rounds[limit].append(row)
                log(
                    f"round {index + 1}: WAL limit {limit} MB: p99 {row['p99_ms']:.2f} ms, {row['rps']:,.0f} req/s, "
                    f"WAL {row['wal_mb_after']:.0f} MB"
                )
    finally:
        stop_all()
    summary = {
        limit: {
            "p99_ms_median": statistics.median(row["p99_ms"] for row in rows),
            "rps_median": statistics.median(row["rps"] for row in rows),
            "wal_mb_max": max(row["wal_mb_after"] for row in rows),
            "errors": sum(row["errors"] for row in rows),
        }
        for limit, rows in rounds.items()
    }
    config = {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections}
    args.out.write_text(json.dumps({"config": config, "rounds": rounds, "summary": summary}, indent=2) + "\n")
    header = f"p99 ms per round (c={args.connections})"
    print(f"\n| WAL limit | {header} | median p99 ms | req/s | WAL MB at most | errors |")
    print("|---|---|---|---|---|---|")
    for limit, rows in rounds.items():
        per_round = ", ".join(f"{row['p99_ms']:.1f}" for row in rows)
        s = summary[limit]
        print(
            f"| {limit} MB | {per_round} | {s['p99_ms_median']:.2f} | {s['rps_median']:,.0f} | "
            f"{s['wal_mb_max']:.0f} | {s['errors']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
