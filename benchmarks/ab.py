"""What each change bought: Wattfare as of several git revisions, measured side by side in one run.

Each revision is checked out into a temporary worktree and served by `wattfare serve` with that tree's
sources first on PYTHONPATH (same virtualenv, same settings, same nginx stand-in). Rounds interleave the
revisions, so machine noise falls on all of them alike. Per revision, medians over rounds:

    CPU ms per request and req/s at c=32 (non-streamed and streamed), added p50 / p99 at c=1 (wrk),
    and added streamed time-to-first-byte p50 / p99 at c=1 (raw-socket client), all against nginx direct.

Run: `.venv/bin/python benchmarks/ab.py 56d9690 HEAD~2 HEAD` (revisions as git understands them; the
working tree itself is `.`). Writes `results/ab.json` unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import standin
from load import Target, measure_ttfb, wrk_cpu
from processes import Server, stop_all
from servers import HERE, ROOT, log, start_nginx, start_wattfare

SOURCES = "packages/wattfare-core/src"


def worktree(revision: str, tmp: Path) -> Path:
    """The wattfare sources of `revision` (`.` is the working tree as it is)."""
    if revision == ".":
        return ROOT / SOURCES
    target = tmp / f"tree-{len(list(tmp.glob('tree-*')))}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(target), revision], check=True)
    return target / SOURCES


def serve(revision: str, sources: Path, upstream: str, tmp: Path) -> tuple[Server, Target]:
    os.environ["PYTHONPATH"] = str(sources)  # read by child_env: the server imports this revision's wattfare
    try:
        server, port, secret = start_wattfare(tmp, f"wattfare-{revision.replace('/', '_')}", upstream, 1, None)
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
    server: Server, target: Target, *, stream: bool, connections: int, seconds: float, tmp: Path
) -> dict[str, float]:
    return wrk_cpu(
        server,
        target,
        stream=stream,
        users=1000 if target.user_header else 1,
        connections=connections,
        seconds=seconds,
        tmp=tmp,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions to compare ('.' = the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--ttfb-requests", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ab.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wattfare-ab-"))
    tmp.chmod(0o755)  # nginx's workers run as nobody and read the stream file from here
    rows: dict[str, dict[str, list[float]]] = {revision: {} for revision in args.revisions}
    direct: dict[str, list[float]] = {}
    try:
        nginx, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        model = standin.MODEL
        nginx_target = Target("direct", nginx_port, "/v1/chat/completions", model, model, server="nginx")
        servers = {}
        for revision in args.revisions:
            servers[revision] = serve(revision, worktree(revision, tmp), upstream, tmp)
            log(f"serving {revision} on :{servers[revision][1].port}")
        for server, target in servers.values():  # warm every server (connections, caches, the price book)
            measure(server, target, stream=False, connections=8, seconds=1, tmp=tmp)
        for round_index in range(args.rounds):
            turn = round_index % len(args.revisions)
            order = args.revisions[turn:] + args.revisions[:turn]
            c1 = measure(nginx, nginx_target, stream=False, connections=1, seconds=args.duration, tmp=tmp)
            _add(direct, {"p50_ms": c1["p50_ms"], "p99_ms": c1["p99_ms"]})
            for revision in order:
                server, target = servers[revision]
                json32 = measure(server, target, stream=False, connections=32, seconds=args.duration, tmp=tmp)
                stream32 = measure(server, target, stream=True, connections=32, seconds=args.duration, tmp=tmp)
                json1 = measure(server, target, stream=False, connections=1, seconds=args.duration, tmp=tmp)
                _add(
                    rows[revision],
                    {
                        "cpu_ms_json_c32": json32["cpu_ms_per_request"],
                        "rps_json_c32": json32["rps"],
                        "cpu_ms_stream_c32": stream32["cpu_ms_per_request"],
                        "rps_stream_c32": stream32["rps"],
                        "p50_ms_c1": json1["p50_ms"],
                        "p99_ms_c1": json1["p99_ms"],
                    },
                )
            ttfb = measure_ttfb([nginx_target, *(target for _, target in servers.values())], args.ttfb_requests)
            for name, into in (("direct", direct), *((revision, rows[revision]) for revision in args.revisions)):
                _add(into, {"ttfb_p50_ms": ttfb[name].ttfb_p50_ms, "ttfb_p99_ms": ttfb[name].ttfb_p99_ms})
            log(f"round {round_index + 1}/{args.rounds} done")
    finally:
        stop_all()
        for tree in tmp.glob("tree-*"):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    summary = _summarise(rows, direct)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"revisions": args.revisions, "summary": summary, "runs": rows, "direct": direct}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(summary))
    return 0


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
    return summary


def _table(summary: dict[str, dict[str, float]]) -> str:
    lines = [
        "| revision | CPU ms/req c=32 (json / stream) | req/s c=32 (json / stream) | added p50 / p99 ms c=1 "
        "| added TTFB p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for revision, s in summary.items():
        lines.append(
            f"| {revision} | {s['cpu_ms_json_c32']:.3f} / {s['cpu_ms_stream_c32']:.3f} "
            f"| {s['rps_json_c32']:,.0f} / {s['rps_stream_c32']:,.0f} "
            f"| {s['added_p50_ms_c1']:.2f} / {s['added_p99_ms_c1']:.2f} "
            f"| {s['added_ttfb_p50_ms']:.2f} / {s['added_ttfb_p99_ms']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
