"""Where Wattfare's CPU goes per request: py-spy on a real `wattfare serve` under wrk load.

Starts the nginx stand-in, Wattfare (and the bare pass-through for comparison), drives each with wrk
while py-spy samples the server process, then splits the samples by component (uvicorn, Starlette,
httpx/httpcore/h11, SQLite, metering, logging, ...) and converts the shares into microseconds of CPU per
request using the CPU time the process really used (/proc). Also: SQLite statements per request
(counted in-process with sqlite3's trace callback) and in-process micro-benchmarks (`hot_path_parts.py`).
The access log, whose A/B lived here, is off in `wattfare serve` unless WATTFARE_ACCESS_LOG=1.

Run: `.venv/bin/python benchmarks/profile_wattfare.py` (needs py-spy: pip install py-spy).
Writes benchmarks/results/profile.json and prints the tables PROFILE.md quotes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import standin
from hot_path_parts import count_statements, micro
from load import Target, run_wrk, wrk_cpu, wrk_script
from processes import Server, stop_all
from servers import HERE, start_bare, start_nginx, start_wattfare
from whatif import ALL_PROPOSALS, start_whatif

RAW = HERE / "results" / "tmp"  # raw py-spy stacks (gitignored): feed them to a flamegraph tool

# Component of a frame, by the first matching path fragment (most specific first).
COMPONENTS = [
    ("benchmarks/whatif.py", "upstream client (what-if httptools prototype)"),
    ("wattfare/server/store/", "SQLite store (incl. the sqlite3 C calls)"),
    ("_sqlite3", "SQLite store (incl. the sqlite3 C calls)"),
    ("libsqlite3", "SQLite store (incl. the sqlite3 C calls)"),
    ("wattfare/server/upstream/", "Wattfare upstream client wrapper"),
    ("wattfare/server/proxy/relay.py", "Wattfare relay (SSE)"),
    ("wattfare/server/proxy/sse_frames.py", "Wattfare relay (SSE)"),
    ("wattfare/server/billing/meter.py", "Wattfare meter + metering domain"),
    ("wattfare/metering/", "Wattfare meter + metering domain"),
    ("wattfare/server/proxy/completion_request.py", "Wattfare request parsing + token bound"),
    ("wattfare/server/", "Wattfare other (proxy, auth, errors)"),
    ("wattfare/", "Wattfare other (proxy, auth, errors)"),
    ("aiohttp/", "aiohttp client (aiohttp + yarl + multidict)"),
    ("yarl/", "aiohttp client (aiohttp + yarl + multidict)"),
    ("multidict/", "aiohttp client (aiohttp + yarl + multidict)"),
    ("aiohappyeyeballs/", "aiohttp client (aiohttp + yarl + multidict)"),
    ("httpcore/", "httpx client (httpx + httpcore + h11 + anyio)"),
    ("httpx/", "httpx client (httpx + httpcore + h11 + anyio)"),
    ("/h11/", "httpx client (httpx + httpcore + h11 + anyio)"),
    ("anyio/", "httpx client (httpx + httpcore + h11 + anyio)"),
    ("sniffio/", "httpx client (httpx + httpcore + h11 + anyio)"),
    ("starlette/", "Starlette (routing, Request, Response, exception middleware)"),
    ("logging/", "logging (uvicorn access log)"),
    ("uvicorn/logging.py", "logging (uvicorn access log)"),
    ("click/", "logging (uvicorn access log)"),
    ("uvicorn/", "uvicorn + httptools (server side HTTP)"),
    ("httptools", "uvicorn + httptools (server side HTTP)"),
    ("uvloop", "event loop (uvloop, asyncio tasks, sockets)"),
    ("asyncio/", "event loop (uvloop, asyncio tasks, sockets)"),
    ("orjson", "JSON (orjson)"),
    ("json/", "JSON (stdlib)"),
    ("hashlib", "hashing"),
    ("datetime", "datetime"),
]


# Leaves of a thread that waits rather than runs (the event loop's epoll, a sleeping thread).
IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "clock_nanosleep", "nanosleep", "pthread_cond_wait", "sleep (")


def component(frame: str) -> str | None:
    for fragment, name in COMPONENTS:
        if fragment in frame:
            return name
    return None


def analyse(raw: Path) -> dict[str, Any]:
    """Self samples by component, plus inclusive samples of the hot path's steps."""
    by_component: Counter[str] = Counter()
    leaf_functions: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    steps = {
        "authenticate (KeyCache)": "authenticate (",
        "read_body": "read_body (",
        "parse_completion": "parse_completion (",
        "Meter.reserve": "reserve (",
        "  SQLiteStore.budget": "budget (",
        "  SQLiteStore.try_reserve": "try_reserve (",
        "upstream send (httpx)": ".send (",
        "  inside httpx/httpcore (all calls)": "site-packages/httpcore/",
        "_whole_answer (settle + response)": "_whole_answer (",
        "Meter.settle / settle_estimate": "settle",
        "  SQLiteStore.settle": "sqlite.py)",
        "relay _pump (SSE)": "_pump (",
        "uvicorn access log": "access_log",
        "chat_completions (whole handler)": "chat_completions (",
        "uvicorn run_asgi (whole request)": "run_asgi (",
    }
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            continue  # a thread waiting (py-spy --native counts these): not CPU
        total += count
        # Self time goes to the innermost frame we can name (C frames from --native name their library).
        named = None
        for frame in reversed(frames):
            named = component(frame)
            if named is not None:
                break
        by_component[named or "other (interpreter, stdlib)"] += count
        leaf_functions[frames[-1]] += count
        joined = ";".join(frames)
        for step, marker in steps.items():
            if step.strip().startswith("SQLiteStore.settle"):
                hit = any("settle (" in f and "sqlite.py" in f for f in frames)
            elif step == "Meter.settle / settle_estimate":
                hit = any(("settle (" in f or "settle_estimate (" in f) and "meter.py" in f for f in frames)
            elif step == "upstream send (httpx)":
                hit = any(".send (" in f and "openai_compatible.py" in f for f in frames)
            elif step.strip().startswith("SQLiteStore."):
                hit = any(marker in f and "sqlite.py" in f for f in frames)
            elif step == "Meter.reserve":
                hit = any(marker in f and "meter.py" in f for f in frames)
            else:
                hit = marker in joined
            if hit:
                inclusive[step] += count
    return {
        "samples": total,
        "components": dict(by_component.most_common()),
        "steps": {k: inclusive.get(k, 0) for k in steps},
        "top_leaves": dict(leaf_functions.most_common(40)),
    }


def spy_while_loading(
    server: Server,
    target: Target,
    *,
    stream: bool,
    users: int,
    connections: int,
    seconds: float,
    out: Path,
    native: bool,
) -> dict[str, Any]:
    script = out.with_suffix(".lua")
    script.write_text(wrk_script(target, stream=stream, users=users))
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.tree()[0]), "--rate", "250"]
    command += ["--format", "raw", "--full-filenames", "--nolineno", "--duration", f"{seconds:g}", "-o", str(out)]
    command += ["--native"] if native else ["--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    before = server.cpu()
    result = run_wrk(
        script,
        f"http://127.0.0.1:{target.port}{target.path}",
        connections=connections,
        seconds=seconds - 1,
        threads=1 if connections == 1 else 2,
    )
    cpu = server.cpu() - before
    spy_out = spy.communicate(timeout=60)[0].decode(errors="replace")
    analysis = analyse(out) if out.exists() else {"samples": 0, "components": {}, "steps": {}, "top_leaves": {}}
    return {
        "rps": result.rps,
        "requests": result.requests,
        "errors": result.errors,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "cpu_ms_per_request": 1000 * cpu / max(1, result.requests),
        "py_spy": spy_out.strip().splitlines()[-2:] if spy_out.strip() else [],
        **analysis,
    }


def print_report(report: dict[str, Any]) -> None:
    for label, p in report["profiles"].items():
        print(f"\n## {label}: {p['rps']:.0f} req/s, {p['cpu_ms_per_request']:.3f} ms CPU/req, {p['samples']} samples")
        total = max(1, p["samples"])
        for name, count in p["components"].items():
            print(f"  {100 * count / total:5.1f}%  {1000 * p['cpu_ms_per_request'] * count / total:7.1f} µs  {name}")
        print("  steps (inclusive):")
        for name, count in p["steps"].items():
            print(f"  {100 * count / total:5.1f}%  {1000 * p['cpu_ms_per_request'] * count / total:7.1f} µs  {name}")
    print("\nin-process, µs CPU per call (best of 3):")
    for name, us in report["micro_us"].items():
        print(f"  {us:8.1f}  {name}")
    for name, case in report["sqlite_statements"].items():
        print(
            f"\n{name}: {case['statements']} statements, {case['writes']} writes, {case['transactions']} transactions"
        )
        for sql in case["sql"]:
            print(f"    {sql}")


def without_machine_paths(text: str) -> str:
    """The report as committed: no machine's paths (packages as `site-packages/…`, the checkout's files relative)."""
    text = re.sub(r"[^\s\"'(]*/site-packages/", "site-packages/", text)
    text = text.replace(str(HERE.parent) + "/", "")
    # Native frames name the interpreter's build and install directories: their file name is what matters.
    return re.sub(r"\(/[^)\s]*/([^/)\s]+)\)", r"(\1)", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--micro-calls", type=int, default=2000)
    parser.add_argument("--reanalyse", action="store_true", help="re-read the raw stacks of --out's run and print")
    parser.add_argument("--only", default="", help="profile only the scenarios whose label contains this")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too; pauses the process)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile.json")
    args = parser.parse_args()
    if shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None:
        print("py-spy is missing: pip install py-spy", file=sys.stderr)
        return 2
    RAW.mkdir(parents=True, exist_ok=True)
    if args.reanalyse:
        report = json.loads(args.out.read_text())
        suffix = "-native" if report["native"] else ""
        for label, profile in report["profiles"].items():
            raw = RAW / f"{label.replace(' ', '_').replace('=', '')}{suffix}.txt"
            if raw.exists():
                profile.update(analyse(raw))
        args.out.write_text(without_machine_paths(json.dumps(report, indent=2)) + "\n")
        print_report(report)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-profile-"))
    tmp.chmod(0o755)
    report = {"seconds": args.seconds, "native": args.native}
    try:
        _, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        wattfare, port, secret = start_wattfare(tmp, "wattfare", upstream, 1, None)
        bare, bare_port = start_bare(tmp, upstream, "wattfare")
        lean, lean_port, lean_secret = start_whatif(tmp, "whatif", upstream, ALL_PROPOSALS)
        wl = Target(
            "whatif",
            lean_port,
            "/api/v1/chat/completions",
            standin.MODEL,
            standin.MODEL,
            headers={"Authorization": f"Bearer {lean_secret}"},
            user_header="Wattfare-User",
        )
        wf = Target(
            "wattfare",
            port,
            "/api/v1/chat/completions",
            standin.MODEL,
            standin.MODEL,
            headers={"Authorization": f"Bearer {secret}"},
            user_header="Wattfare-User",
        )
        bt = Target("bare", bare_port, "/v1/chat/completions", standin.MODEL, standin.MODEL)
        for server, target in ((wattfare, wf), (bare, bt), (lean, wl)):
            wrk_cpu(server, target, stream=False, users=args.users, connections=8, seconds=2, tmp=tmp)  # warm-up
        profiles: dict[str, Any] = {}
        for label, server, target, stream, connections in (
            ("wattfare json c=32", wattfare, wf, False, 32),
            ("wattfare stream c=32", wattfare, wf, True, 32),
            ("wattfare json c=1", wattfare, wf, False, 1),
            ("bare json c=32", bare, bt, False, 32),
            ("what-if (all proposals) json c=32", lean, wl, False, 32),
            ("what-if (all proposals) stream c=32", lean, wl, True, 32),
        ):
            if args.only not in label:
                continue
            print(f"profiling {label} ...", flush=True)
            profiles[label] = spy_while_loading(
                server,
                target,
                stream=stream,
                users=args.users if target.user_header else 1,
                connections=connections,
                seconds=args.seconds,
                out=RAW / f"{label.replace(' ', '_').replace('=', '')}{'-native' if args.native else ''}.txt",
                native=args.native,
            )
            p = profiles[label]
            print(
                f"  {p['rps']:.0f} req/s, {p['cpu_ms_per_request']:.3f} ms CPU/req, {p['samples']} samples",
                p["py_spy"],
            )
        report["profiles"] = profiles
        report["sqlite_statements"] = count_statements(tmp, upstream)
        report["micro_us"] = micro(tmp, args.micro_calls)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(without_machine_paths(json.dumps(report, indent=2)) + "\n")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
