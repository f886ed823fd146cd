"""Why Wattfare's open streams cost what they cost: where the CPU per token and the memory per stream go.

Three `open_streams` holds of N streams through the what-if server (`open_streams.serve_uncapped`:
`wattfare serve` as shipped but for aiohttp's 512-connection cap, so every stream reaches the relay),
launched by `serve` below, which adds heap dumps on a signal:

    cpu      py-spy (--nonblocking, 100 Hz) samples the server through the hold; the samples are split
             by component (profile_wattfare.COMPONENTS, self time) and by step of a stream (inclusive),
             and turned into µs of CPU per relayed token with the CPU the process really used (/proc)
    census   the same server counts its live Python objects by type, idle and with the N streams open
             (SIGUSR2): what each open stream keeps alive, by type, next to its RSS growth from outside
    heap     a second server, behind a slower stand-in (its streams last 40 s: tracemalloc slows it
             several times, and all N must be open at once), starts tracemalloc idle and dumps what is
             alive of the allocations made since with the N streams open (SIGUSR1): by allocation site

    .venv/bin/python benchmarks/open_streams_why.py [--n 1000 --tokens 200]

Writes benchmarks/results/open_streams_why.json (raw py-spy stacks under results/tmp/, gitignored) and
prints the tables. The traced hold's other figures (lag, TTFB, CPU) mean nothing: tracemalloc is on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import open_streams
from open_streams_measure import Target, run_hold
from open_streams_why_cpu import analyse_cpu, print_cpu, profile_cpu
from open_streams_why_dumps import dump_when_open, serve, wait_for_file
from open_streams_why_memory import analyse_memory, census_growth, print_memory

HERE = Path(__file__).resolve().parent
RAW = HERE / "results" / "tmp"
SLOW_TOKENS, SLOW_RATE = 80, 2.0  # the traced server's streams: 40 s each

# Its parts, one concept each: the heap dumps on a signal, `serve` among them (open_streams_why_dumps), where
# the CPU goes (open_streams_why_cpu) and what an open stream keeps alive (open_streams_why_memory). This script
# starts the servers, runs the three holds and writes the results.


def start_servers(args: argparse.Namespace, tmp: Path) -> tuple[list[Any], list[Target], Path]:
    """Two stand-ins (as asked; slow), the what-if server, and the what-if server under tracemalloc."""
    import drip_standin

    standin, port = drip_standin.start(tmp, args.tokens, args.rate)
    # The traced server is several times slower: its streams last long enough for all N to be open at once.
    slow, slow_port = drip_standin.start(tmp, SLOW_TOKENS, SLOW_RATE, "drip-slow")
    dump = tmp / "heap"
    launcher = [sys.executable, __file__, "serve", "--dumps"]
    plain = open_streams.start_uncapped(
        tmp, f"http://127.0.0.1:{port}/v1", "wattfare-uncapped", [*launcher, f"{dump}-plain"]
    )
    traced = open_streams.start_uncapped(
        tmp, f"http://127.0.0.1:{slow_port}/v1", "wattfare-traced", [*launcher, f"{dump}-traced"]
    )
    targets = [
        Target(
            name,
            name,
            server_port,
            "/api/v1/chat/completions",
            drip_standin.MODEL,
            "/healthz",
            server,
            headers={"Authorization": f"Bearer {secret}"},
            user_header="Wattfare-User",
            metered=True,
        )
        for name, (server, server_port, secret) in (("wattfare-uncapped", plain), ("wattfare-traced", traced))
    ]
    return [standin, slow], targets, dump


async def experiment(
    args: argparse.Namespace, standins: list[Any], targets: list[Target], dump: Path
) -> dict[str, Any]:
    standin, slow = standins
    slow_args = argparse.Namespace(**(vars(args) | {"tokens": SLOW_TOKENS, "rate": SLOW_RATE}))
    await open_streams.warm(targets[:1], args)
    await open_streams.warm(targets[1:], slow_args)
    RAW.mkdir(parents=True, exist_ok=True)
    raw = RAW / f"open-streams-why-{args.n}.txt"
    seconds = args.tokens / args.rate
    cpu_hold = await run_hold(targets[0], standin, args.n, args, profile_cpu(targets[0].server, seconds, raw))
    profile = analyse_cpu(raw)

    plain, traced = targets[0].server, targets[1].server
    plain.process.send_signal(signal.SIGUSR2)  # the idle census
    await asyncio.to_thread(wait_for_file, Path(f"{dump}-plain.census0"))
    census = dump_when_open(plain, signal.SIGUSR2, Path(f"{dump}-plain.census1"))
    census_hold = await run_hold(targets[0], standin, args.n, args, census)
    streams = census_hold["beside"]["open_at_dump"]
    types, collections = census_growth(Path(f"{dump}-plain.census0"), Path(f"{dump}-plain.census1"), streams)

    traced.process.send_signal(signal.SIGUSR1)  # tracing starts now, idle (after the warm-up)
    await asyncio.to_thread(wait_for_file, Path(f"{dump}-traced.tracing"))
    snapshot = dump_when_open(traced, signal.SIGUSR1, Path(f"{dump}-traced.snapshot0"))
    traced_hold = await run_hold(targets[1], slow, args.n, slow_args, snapshot)
    heap = analyse_memory(Path(f"{dump}-traced.snapshot0"), traced_hold["beside"]["open_at_dump"])

    print_cpu(profile, cpu_hold)
    print_memory(heap, types, cpu_hold, census_hold, traced_hold)
    print(f"\n## garbage collections during the census hold (ramp and plateau): {json.dumps(collections)}")
    for hold in (cpu_hold, census_hold, traced_hold):
        hold.pop("timeline")
    return {
        "cpu": {"hold": cpu_hold, "profile": profile},
        "memory": {"census_hold": census_hold, "types_per_stream": types, "traced_hold": traced_hold, "heap": heap},
        "gc_during_census_hold": collections,
    }


def main() -> int:
    if sys.argv[1:2] == ["serve"]:  # in the server process (see `serve`)
        serve_parser = argparse.ArgumentParser()
        serve_parser.add_argument("--dumps", required=True)
        serve_parser.add_argument("port", type=int)
        serve_args = serve_parser.parse_args(sys.argv[2:])
        serve(serve_args.port, serve_args.dumps)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="open streams")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "open_streams_why.json")
    parser.add_argument("--reanalyse", action="store_true", help="re-read the raw py-spy stacks of --out's run")
    args = parser.parse_args()
    if args.reanalyse:
        results = json.loads(args.out.read_text())
        raw = RAW / f"open-streams-why-{results['config']['n']}.txt"
        results["cpu"]["profile"] = analyse_cpu(raw)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print_cpu(results["cpu"]["profile"], results["cpu"]["hold"])
        return 0
    # What run_hold reads from open_streams' own arguments.
    args.ramp, args.idle_seconds = None, 1.0
    import drip_standin
    import uvloop
    from processes import stop_all

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    drip_standin.raise_open_files()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-open-streams-why-"))
    tmp.chmod(0o755)
    try:
        standins, targets, dump = start_servers(args, tmp)
        results = uvloop.run(experiment(args, standins, targets, dump))
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    results["config"] = vars(args) | {"out": os.path.relpath(args.out, HERE.parent)}
    results["nginx"] = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
