"""Wattfare's overhead, side by side: direct, a bare Python pass-through, Wattfare, and the LiteLLM proxy.

One run starts every server against one nginx stand-in upstream on 127.0.0.1, then measures in rounds,
the targets in a rotating order each round, so load from elsewhere on the machine falls on all of them:

    c=1   non-streamed latency (wrk), and streamed time-to-first-byte (raw-socket client, interleaved)
    c=32  non-streamed and streamed throughput and latency (wrk)
    CPU   ms of server CPU per request (utime + stime of the server's process tree, before/after)
    mem   peak resident memory of each server's processes (VmHWM)
    contention  Wattfare at c=32 with every request on one user's cap row vs spread over many users,
                with one worker and with two (two processes contend for SQLite's write lock)

Results go to benchmarks/results/latest.{json,md,png} and the table into benchmarks/README.md.
Run with `make bench`, or `.venv/bin/python benchmarks/run.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import report
import standin
from load import Target, WrkResult, measure_ttfb, request_body, run_wrk, wrk_script
from processes import Server, stop_all, system_busy_seconds
from servers import (
    HERE,
    LITELLM_MASTER_KEY,
    ROOT,
    install_litellm,
    log,
    start_bare,
    start_litellm,
    start_nginx,
    start_wattfare,
)


def check(target: Target) -> None:
    """One non-streamed and one streamed request, checked for what each target must do."""
    base = f"http://127.0.0.1:{target.port}{target.path}"
    headers = {"content-type": "application/json", **target.headers}
    if target.user_header:
        headers[target.user_header] = "bench-check"
    plain = httpx.post(base, content=request_body(target.model, stream=False), headers=headers, timeout=30)
    if plain.status_code != 200 or plain.json().get("usage") is None:
        raise RuntimeError(f"{target.name}: bad answer {plain.status_code}: {plain.text[:500]}")
    streamed = httpx.post(
        base,
        content=request_body(target.stream_model, stream=True),
        headers=headers | {"accept": "text/event-stream"},
        timeout=30,
    )
    text = streamed.text
    if streamed.status_code != 200 or "[DONE]" not in text or text.count("data: ") < 20:
        raise RuntimeError(f"{target.name}: bad stream {streamed.status_code}: {text[:500]}")
    if target.name.startswith("wattfare") and ("wattfare-cost-usd" not in plain.headers or '"wattfare"' not in text):
        raise RuntimeError(f"{target.name}: not metered: {dict(plain.headers)} {text[-400:]}")


# ---------------------------------------------------------------- measuring


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.servers: dict[str, Server] = {}
        self.scripts: dict[tuple[str, bool, int], Path] = {}
        self.runs: list[dict[str, Any]] = []
        self.ttfb: list[dict[str, Any]] = []
        self.noise: list[dict[str, float | str]] = []  # "loadavg" is /proc/loadavg's text

    def script(self, target: Target, *, stream: bool, users: int) -> Path:
        key = (target.name, stream, users)
        if key not in self.scripts:
            path = self.tmp / f"wrk-{target.name}-{'sse' if stream else 'json'}-{users}.lua"
            path.write_text(wrk_script(target, stream=stream, users=users))
            self.scripts[key] = path
        return self.scripts[key]

    def wrk(
        self,
        target: Target,
        scenario: str,
        *,
        stream: bool,
        connections: int,
        seconds: float,
        users: int = 1,
        rnd: int = -1,
    ) -> WrkResult:
        server = self.servers[target.server] if target.server else None
        before = server.cpu() if server else 0.0
        url = f"http://127.0.0.1:{target.port}{target.path}"
        threads = 1 if connections == 1 else 2
        result = run_wrk(
            self.script(target, stream=stream, users=users),
            url,
            connections=connections,
            seconds=seconds,
            threads=threads,
        )
        cpu = (server.cpu() - before) if server else 0.0
        if rnd >= 0:
            self.runs.append(
                {
                    "round": rnd,
                    "target": target.name,
                    "scenario": scenario,
                    "users": users,
                    **asdict(result),
                    "rps": result.rps,
                    "cpu_s": cpu,
                    "cpu_ms_per_request": 1000 * cpu / result.requests if result.requests else None,
                }
            )
        status = f"{result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        extra = f"  cpu {1000 * cpu / max(1, result.requests):.3f} ms/req" if server else ""
        errors = f"  ERRORS {result.errors}" if result.failed else ""
        log(f"  {target.name:<12} {scenario:<22} {status}{extra}{errors}")
        return result


def build_targets(ports: dict[str, int], secrets: dict[str, str], nginx_port: int) -> list[Target]:
    model = standin.MODEL
    targets = [
        Target("direct", nginx_port, "/v1/chat/completions", model, model, server="nginx"),
        Target("bare", ports["bare"], "/v1/chat/completions", model, model, server="bare"),
        Target(
            "wattfare",
            ports["wattfare"],
            "/api/v1/chat/completions",
            model,
            model,
            headers={"Authorization": f"Bearer {secrets['wattfare']}"},
            user_header="Wattfare-User",
            server="wattfare",
        ),
    ]
    if "litellm" in ports:
        targets.append(
            Target(
                "litellm",
                ports["litellm"],
                "/v1/chat/completions",
                model,
                f"{model}-sse",
                headers={"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                server="litellm",
            )
        )
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--ttfb-requests", type=int, default=150, help="streamed requests per target per round for TTFB"
    )
    parser.add_argument("--users", type=int, default=1000, help="end users in the 'spread' runs (default 1000)")
    parser.add_argument("--connections", type=int, default=32, help="concurrency of the throughput runs (default 32)")
    parser.add_argument(
        "--bare-client",
        choices=["wattfare", "httpx", "httptools"],
        default="wattfare",
        help="the bare pass-through's HTTP client: by default Wattfare's own upstream client, so the floor is fair",
    )
    parser.add_argument("--litellm-version", default="1.108.7", help="litellm[proxy] version for the comparison")
    parser.add_argument("--skip-litellm", action="store_true", help="do not install or run the LiteLLM proxy")
    parser.add_argument("--no-contention", action="store_true", help="skip the one-row vs spread contention runs")
    parser.add_argument(
        "--wattfare-log-level",
        default=None,
        help="WATTFARE_LOG_LEVEL for `wattfare serve` (default: unset, as shipped)",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs (a smoke test, noisy)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where results go")
    parser.add_argument("--note", default="", help="a note recorded with the results (e.g. machine load)")
    parser.add_argument("--render", type=Path, help="only re-render the table, chart and README from a results JSON")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs, databases)")
    args = parser.parse_args()
    if args.render:
        results = json.loads(args.render.read_text())
        results["summary"] = report.summarise(results)
        publish(results, args.out)
        return 0
    if args.quick:
        args.rounds, args.duration, args.ttfb_requests = 1, 3.0, 60
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"`{tool}` is missing: sudo apt-get install -y nginx wrk", file=sys.stderr)
            return 2

    # `kill <pid>` of this script (or of make) still stops the servers: SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-bench-"))
    tmp.chmod(0o755)  # nginx's workers run as nobody and read the stream file from here
    bench = Bench(args, tmp)
    skipped: dict[str, str] = {}
    try:
        log(f"temp dir {tmp}")
        nginx, nginx_port = start_nginx(tmp)
        bench.servers["nginx"] = nginx
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        ports: dict[str, int] = {}
        secrets: dict[str, str] = {}
        bench.servers["bare"], ports["bare"] = start_bare(tmp, upstream, args.bare_client)
        bench.servers["wattfare"], ports["wattfare"], secrets["wattfare"] = start_wattfare(
            tmp, "wattfare", upstream, 1, args.wattfare_log_level
        )
        contention_targets: list[Target] = []
        if not args.no_contention:
            bench.servers["wattfare-2w"], ports["wattfare-2w"], secrets["wattfare-2w"] = start_wattfare(
                tmp, "wattfare-2w", upstream, 2, args.wattfare_log_level
            )
        if args.skip_litellm:
            skipped["litellm"] = "skipped (--skip-litellm)"
        else:
            why = install_litellm(args.litellm_version, tmp)
            if why is None:
                try:
                    bench.servers["litellm"], ports["litellm"] = start_litellm(tmp, nginx_port)
                except RuntimeError as exc:
                    why = f"the LiteLLM proxy did not start: {exc}"
            if why is not None:
                skipped["litellm"] = why
                log(f"SKIPPING LiteLLM: {why}")
        log(f"servers up: { {name: s.tree() for name, s in bench.servers.items()} }")
        targets = build_targets(ports, secrets, nginx_port)
        if not args.no_contention:
            contention_targets = [
                targets[2],
                Target(
                    "wattfare-2w",
                    ports["wattfare-2w"],
                    "/api/v1/chat/completions",
                    standin.MODEL,
                    standin.MODEL,
                    headers={"Authorization": f"Bearer {secrets['wattfare-2w']}"},
                    user_header="Wattfare-User",
                    server="wattfare-2w",
                ),
            ]
        for target in targets + contention_targets[1:]:
            check(target)
        log("every target answers and Wattfare meters; warming up")
        for target in targets + contention_targets[1:]:
            users = args.users if target.user_header else 1
            bench.wrk(target, "warmup", stream=False, connections=8, seconds=2, users=users)
            bench.wrk(target, "warmup-stream", stream=True, connections=8, seconds=1, users=users)
            if target.user_header:
                bench.wrk(target, "warmup-one-user", stream=False, connections=8, seconds=1, users=1)
        measure_ttfb(targets, 10, warmup=5)

        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            log(f"round {rnd + 1}/{args.rounds}: {[t.name for t in order]}")
            busy, ours, wall = system_busy_seconds(), _our_cpu(bench), time.monotonic()
            for target in order:
                users = args.users if target.user_header else 1
                bench.wrk(target, "c1", stream=False, connections=1, seconds=args.duration, rnd=rnd)
                bench.wrk(
                    target,
                    f"c{args.connections}",
                    stream=False,
                    connections=args.connections,
                    seconds=args.duration,
                    users=users,
                    rnd=rnd,
                )
                bench.wrk(
                    target,
                    f"c{args.connections}-stream",
                    stream=True,
                    connections=args.connections,
                    seconds=args.duration,
                    users=users,
                    rnd=rnd,
                )
            ttfb = measure_ttfb(order, args.ttfb_requests)
            for name, result in ttfb.items():
                bench.ttfb.append({"round": rnd, "target": name, **asdict(result)})
                log(
                    f"  {name:<12} {'c1-stream TTFB':<22} p50 {result.ttfb_p50_ms:7.2f} ms  "
                    f"p99 {result.ttfb_p99_ms:7.2f} ms  (whole stream p50 {result.total_p50_ms:.2f} ms)"
                )
            for target in contention_targets:
                for users in (1, args.users):
                    if target.name == "wattfare" and users == args.users:
                        continue  # the main c=32 run above is this one
                    bench.wrk(
                        target,
                        f"c{args.connections}",
                        stream=False,
                        connections=args.connections,
                        seconds=args.duration,
                        users=users,
                        rnd=rnd,
                    )
            elapsed = time.monotonic() - wall
            foreign = (system_busy_seconds() - busy) - (_our_cpu(bench) - ours)
            bench.noise.append(
                {"round": rnd, "seconds": elapsed, "foreign_cores": max(0.0, foreign / elapsed), "loadavg": _loadavg()}
            )
            log(f"  other work on the machine this round: {max(0.0, foreign / elapsed):.2f} cores ({_loadavg()})")
        memory = {t.name: bench.servers[t.server].peak_rss_mib() for t in targets + contention_targets if t.server}
    finally:
        stop_all()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "nginx": _version(["nginx", "-v"]),
            "wrk": _version(["wrk", "--version"]),
            "litellm": None if "litellm" in skipped else args.litellm_version,
        },
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "ttfb_requests": args.ttfb_requests,
            "connections": args.connections,
            "users": args.users,
            "wattfare_log_level": args.wattfare_log_level or "as shipped (info)",
            "bare_client": args.bare_client,
            "note": args.note,
        },
        "skipped": skipped,
        "noise": bench.noise,
        "memory_mib": memory,
        "runs": bench.runs,
        "ttfb": bench.ttfb,
    }
    results["summary"] = report.summarise(results)
    publish(results, args.out)
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    log(f"done in {results['seconds']:.0f} s: {shown}/latest.{{json,md,png}}")
    return 0


def publish(results: dict[str, Any], out: Path) -> None:
    """Write latest.json, latest.md and latest.png into `out`, and the table into the README."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    (out / "latest.md").write_text(table)
    report.chart(results, out / "latest.png")
    if out.resolve() == (HERE / "results").resolve():  # a run elsewhere (--out) leaves the README alone
        report.update_readme(HERE / "README.md", table)
    print(table)


def _our_cpu(bench: Bench) -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    servers = sum(server.cpu() for server in bench.servers.values())
    return servers + children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


if __name__ == "__main__":
    sys.exit(main())
