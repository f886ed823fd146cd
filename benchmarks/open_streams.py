"""Open streams: N concurrent slow streams through each proxy, and what holding them costs.

Every target fronts the dripping stand-in (`drip_standin.py`: nginx + njs timers, by default 200 tokens
at 20 tokens/s, so a stream stays open ~10 s). For each target and N, a fresh server is started and
warmed, then a load client of its own (`open_streams_load.py`, a separate process: uvloop + asyncio
Protocols that count bytes and look for the end, never parsing JSON) opens N streams over a ramp (N/1000 s,
0.5 to 5 s) and holds each to its end, while this process, otherwise idle, measures from outside:

    RSS per open stream   (VmRSS summed over the server's process tree at the plateau, where the most
                          streams were open, - the same sum idle after the warm-up) / streams open there
    event-loop lag        a GET of a cheap endpoint (Wattfare /healthz, LiteLLM /health/liveliness, nginx
                          /v1/models) every 20 ms on one keep-alive connection: its latency p99 over the
                          hold minus the same probe's p99 idle. A probe from outside, so it also holds what
                          the kernel's scheduler adds on a busy machine: the direct row shows that part.
    added TTFB            probe streams (10 a second) opened once every bulk stream has been launched and
                          until the first one ends: time to their first SSE event, p99, minus the direct
                          stand-in's p99 at the same N
    CPU per token         utime + stime of the server's tree over the hold / content tokens relayed
    errors                connect errors, non-200s, streams without [DONE] or cut off, streams still open at
                          the deadline, and (Wattfare) streams without the metered final chunk ("wattfare")

The stand-in's CPU, the load client's and the machine's are recorded for every hold, so a run shows
whether anything but the server under test was the bottleneck. Besides Wattfare as shipped, a what-if
runs the same server with its upstream connection pool uncapped (`serve_uncapped`; no server code changed),
and bare_proxy.py, pool uncapped too, shows the floor: what uvicorn + aiohttp cost any Python relay.

    .venv/bin/python benchmarks/open_streams.py            # N = 1,000 and 5,000 (LiteLLM: 1,000), ~6 min
    .venv/bin/python benchmarks/open_streams.py --quick    # N = 200, 50 tokens: a smoke test
    .venv/bin/python benchmarks/open_streams.py --help

Results: benchmarks/results/open_streams.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from open_streams_load import Hold, Stream, request_bytes
from open_streams_measure import Target, run_hold
from open_streams_table import markdown, row_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "open_streams.json"
STANDIN_LABELS = {"c": "direct (drip_standin.c)", "njs": "direct (nginx + njs drip)"}

# Its parts, one concept each: one hold measured from outside (open_streams_measure) and the results' tables
# (open_streams_table). This script starts the servers under test, warms them and runs the holds.


# ---------------------------------------------------------------- the run


def uncap_aiohttp() -> None:
    """Make every aiohttp connector built from now on unlimited (limit=0): the what-if's one substitution.

    Wattfare's upstream client opens at most 512 connections (`TCPConnector(limit=512)`); a stream beyond them
    waits for a free one, up to the 10 s connect timeout, then fails with 504. The upstream module reads
    `aiohttp.TCPConnector` when it builds its pool, so replacing the name here is enough.
    """
    import aiohttp

    class Uncapped(aiohttp.TCPConnector):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["limit"] = 0
            super().__init__(*args, **kwargs)

    aiohttp.TCPConnector = Uncapped


def serve_uncapped(port: int) -> None:
    """`wattfare serve` (one worker) with its upstream pool uncapped: the shipped server's other figures at N > 512."""
    uncap_aiohttp()
    from wattfare.server.cli.main import main as cli

    sys.argv = ["wattfare", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cli()


def serve_bare_uncapped(port: int, upstream: str) -> None:
    """bare_proxy.py (the floor: uvicorn + Wattfare's upstream client, nothing else), its pool uncapped too."""
    import runpy

    uncap_aiohttp()
    sys.argv = ["bare_proxy.py", "--port", str(port), "--upstream", upstream, "--client", "wattfare"]
    runpy.run_path(str(HERE / "bare_proxy.py"), run_name="__main__")


def start_bare_uncapped(tmp: Path, upstream: str) -> tuple[Any, int, dict[str, str]]:
    from processes import Server, free_port
    from servers import RETRY, child_env, probe_json

    port = free_port()
    command = [sys.executable, __file__, "serve-bare-uncapped", str(port), upstream]
    server = Server(f"bare-{time.monotonic_ns()}", command, tmp / "bare-uncapped.log", env=child_env())
    server.start()
    server.wait_ready(lambda: probe_json(port, "/v1/chat/completions", {}), 30, RETRY)
    return server, port, {}


def start_uncapped(
    tmp: Path, upstream: str, name: str = "wattfare-uncapped", launcher: list[str] | None = None
) -> tuple[Any, int, str]:
    """`serve_uncapped` over a fresh SQLite file provisioned as `servers.start_wattfare` does it.

    `launcher` is the command line before the port (default: this script's `serve-uncapped`).
    """
    from processes import Server, free_port
    from servers import RETRY, probe_json, provision_wattfare, wattfare_env

    port = free_port()
    db = tmp / f"{name}.db"
    cap = "1000000"
    secret = provision_wattfare(db, cap)
    env = wattfare_env(f"sqlite:///{db}", port, upstream, cap)
    command = [*(launcher or [sys.executable, __file__, "serve-uncapped"]), str(port)]
    server = Server(name, command, tmp / f"{name}.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": "bench-user"}
    server.wait_ready(lambda: probe_json(port, "/api/v1/chat/completions", headers), 60, RETRY)
    return server, port, secret


@dataclass(frozen=True)
class Kind:
    """A server to measure: how to start one, and how to talk to it.

    Each hold gets a server of its own, started just before it (and stopped after), so its idle heap is
    one no earlier hold has grown: a process keeps the memory it freed, which would hide the next hold's
    growth. `start` returns (server, port, headers); None means the stand-in itself (never restarted).
    """

    name: str
    label: str
    path: str
    model: str
    health: str
    start: Callable[[], tuple[Any, int, dict[str, str]]] | None = None
    user_header: str | None = None
    metered: bool = False


def kinds(args: argparse.Namespace, tmp: Path, upstream_port: int) -> tuple[list[Kind], dict[str, str]]:
    """What this run measures (the LiteLLM proxy installed first if it is to be measured), and what it skips."""
    import drip_standin
    from servers import LITELLM_MASTER_KEY, install_litellm, start_litellm, start_wattfare

    model, api = drip_standin.MODEL, "/api/v1/chat/completions"
    upstream = f"http://127.0.0.1:{upstream_port}/v1"

    def wattfare() -> tuple[Any, int, dict[str, str]]:
        server, port, secret = start_wattfare(tmp, f"wattfare-{time.monotonic_ns()}", upstream, 1, None)
        return server, port, {"Authorization": f"Bearer {secret}"}

    def uncapped() -> tuple[Any, int, dict[str, str]]:
        server, port, secret = start_uncapped(tmp, upstream, f"wattfare-uncapped-{time.monotonic_ns()}")
        return server, port, {"Authorization": f"Bearer {secret}"}

    def litellm() -> tuple[Any, int, dict[str, str]]:
        server, port = start_litellm(tmp, upstream_port)
        return server, port, {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}

    found = [
        Kind("direct", STANDIN_LABELS[args.standin], "/v1/chat/completions", model, "/v1/models"),
        Kind("wattfare", "Wattfare (1 worker)", api, model, "/healthz", wattfare, "Wattfare-User", metered=True),
    ]
    if not args.no_whatif:
        label = "what-if: Wattfare, upstream pool uncapped"
        found.append(Kind("wattfare-uncapped", label, api, model, "/healthz", uncapped, "Wattfare-User", metered=True))
    if args.bare_sizes:
        label = "bare pass-through, pool uncapped (the floor)"
        # Its probe is a whole relayed (non-streamed) request: the bare proxy has no endpoint of its own.
        bare = partial(start_bare_uncapped, tmp, upstream)
        found.append(Kind("bare", label, "/v1/chat/completions", model, "/v1/chat/completions", bare))
    skipped: dict[str, str] = {}
    if args.skip_litellm:
        skipped["litellm"] = "skipped (--skip-litellm)"
    elif (why := install_litellm(args.litellm_version, tmp)) is not None:
        skipped["litellm"] = why
    else:
        label = f"LiteLLM proxy {args.litellm_version} (1 worker)"
        found.append(Kind("litellm", label, "/v1/chat/completions", f"{model}-sse", "/health/liveliness", litellm))
    return found, skipped


async def launch(kind: Kind, standin: Any, standin_port: int) -> Target:
    if kind.start is None:
        server, port, headers = standin, standin_port, {}
    else:
        server, port, headers = await asyncio.to_thread(kind.start)
    return Target(
        kind.name,
        kind.label,
        port,
        kind.path,
        kind.model,
        kind.health,
        server,
        headers=headers,
        user_header=kind.user_header,
        metered=kind.metered,
    )


async def warm(targets: list[Target], args: argparse.Namespace, streams: int = 5) -> None:
    """A non-streamed answer from each, every user Wattfare will see connected once, then a few short streams."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        for target in targets:
            url = f"http://127.0.0.1:{target.port}{target.path}"
            # LiteLLM's `-sse` alias goes to the stand-in's always-streaming path: a whole answer needs the other.
            model = target.model.removesuffix("-sse")
            body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}
            queue = [f"os-{i}" for i in range(args.users)] if target.user_header else ["-"]

            async def one(
                target: Target = target, url: str = url, body: dict[str, Any] = body, queue: list[str] = queue
            ) -> None:
                while queue:
                    user = queue.pop()
                    headers = target.headers | ({target.user_header: user} if target.user_header else {})
                    answer = await client.post(url, json=body, headers=headers)
                    if answer.status_code != 200 or "usage" not in answer.json():
                        raise RuntimeError(f"{target.name}: {answer.status_code} {answer.text[:300]}")
                    if target.metered and "wattfare-cost-usd" not in answer.headers:
                        raise RuntimeError(f"{target.name}: not metered: {dict(answer.headers)}")

            await asyncio.gather(*(one() for _ in range(32)))
            for _ in range(5):  # the probed endpoint too: a first call may import or fill a cache
                probe = await client.get(f"http://127.0.0.1:{target.port}{target.health}")
                if probe.status_code != 200:
                    raise RuntimeError(f"{target.name}: {target.health} answered {probe.status_code}")
    # Short streams (the drip stops at max_tokens): the streaming path is warm and checked end to end.
    holds = [Hold(streams) for _ in targets]
    loop = asyncio.get_running_loop()
    for target, hold in zip(targets, holds, strict=True):
        for i in range(hold.n):
            user = {target.user_header: f"os-{i}"} if target.user_header else {}
            stream = Stream(hold, request_bytes(target.port, target.path, target.headers | user, target.model, 3))
            hold.open_streams.add(stream)
            await loop.create_connection(lambda s=stream: s, "127.0.0.1", target.port)
    for target, hold in zip(targets, holds, strict=True):
        await asyncio.wait_for(hold.all_ended.wait(), 60)
        if hold.errors or (target.metered and hold.unmetered) or hold.tokens != hold.n * 3:
            failed = f"{hold.errors}, unmetered {hold.unmetered}, tokens {hold.tokens}"
            raise RuntimeError(f"{target.name}: warm-up streams failed: {failed}")


async def measure(args: argparse.Namespace, standin: Any, port: int, found: list[Kind]) -> list[dict[str, Any]]:
    from servers import log

    plan = [(k, n) for n in args.sizes for k in found if k.name not in ("litellm", "bare")]
    plan += [(k, n) for n in args.bare_sizes for k in found if k.name == "bare"]
    plan += [(k, n) for n in args.litellm_sizes for k in found if k.name == "litellm"]
    plan = [(k, n) for k, n in plan if not args.only or k.name in args.only]
    holds: list[dict[str, Any]] = []
    for kind, n in plan:
        log(f"{kind.name}: starting it")
        target: Target | None = None
        try:
            target = await launch(kind, standin, port)
            await warm([target], args)
            log(f"{kind.name}: {n} streams")
            hold = await run_hold(target, standin, n, args)
        except Exception as exc:  # one server failing is a result; the others are still measured
            log(f"  {kind.name} at N={n} FAILED: {exc!r}"[:2000])
            holds.append({"target": kind.name, "label": kind.label, "n": n, "failed": repr(exc)[:2000]})
            continue
        finally:
            if kind.start is not None and target is not None:
                await asyncio.to_thread(target.server.stop)
        holds.append(hold)
        log(f"  {row_text(hold, holds)}")
    return holds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    uncapped = sub.add_parser("serve-uncapped", help="(internal) wattfare serve with the upstream pool uncapped")
    uncapped.add_argument("port", type=int)
    bare = sub.add_parser("serve-bare-uncapped", help="(internal) bare_proxy.py with the upstream pool uncapped")
    bare.add_argument("port", type=int)
    bare.add_argument("upstream")
    parser.add_argument("--quick", action="store_true", help="N = 200, 50 tokens: a smoke test")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="N for direct and Wattfare")
    parser.add_argument("--litellm-sizes", type=int, nargs="*", default=[1000], help="N for LiteLLM")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second per stream")
    parser.add_argument("--ramp", type=float, help="seconds over which the N streams open (default N/1000, 0.5-5)")
    parser.add_argument("--users", type=int, default=1000, help="Wattfare end users the streams are spread over")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="the idle lag probe's duration per hold")
    parser.add_argument("--skip-litellm", action="store_true", help="do not install or run the LiteLLM proxy")
    parser.add_argument("--no-whatif", action="store_true", help="skip the what-if (Wattfare, upstream pool uncapped)")
    parser.add_argument("--bare-sizes", type=int, nargs="*", default=[1000], help="N for the bare pass-through")
    parser.add_argument("--only", nargs="+", help="measure only these targets (direct, wattfare, litellm, ...)")
    parser.add_argument("--litellm-version", default="1.108.7")
    parser.add_argument(
        "--standin", choices=("c", "njs"), default="c", help="the drip: compiled helper (default) or nginx + njs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="only print the tables of a results JSON")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs, databases)")
    args = parser.parse_args()
    if args.command == "serve-uncapped":
        serve_uncapped(args.port)
        return 0
    if args.command == "serve-bare-uncapped":
        serve_bare_uncapped(args.port, args.upstream)
        return 0
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    if args.quick:
        args.sizes, args.litellm_sizes, args.bare_sizes = [200], [200], [200]
        args.tokens, args.users, args.idle_seconds = 50, 200, 1.0

    import shutil

    import drip_standin
    import uvloop
    from processes import stop_all
    from servers import log

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill <pid>` still stops the servers
    limit = drip_standin.raise_open_files()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-open-streams-"))
    tmp.chmod(0o755)
    began = time.monotonic()
    try:
        log(f"temp dir {tmp}; open files limit {limit}")
        standin, port = drip_standin.start(tmp, args.tokens, args.rate, kind=args.standin)
        found, skipped = kinds(args, tmp, port)
        for name, why in skipped.items():
            log(f"SKIPPING {name}: {why}")
        holds = uvloop.run(measure(args, standin, port, found))
    finally:
        stop_all()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results = {
        "run": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - began, 1),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip(),
            # Paths as the checkout names them: the committed results name no machine's directories.
            "config": {
                k: (os.path.relpath(v, HERE.parent) if isinstance(v, Path) else v) for k, v in vars(args).items()
            },
        },
        "skipped": skipped,
        "holds": holds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    log(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
