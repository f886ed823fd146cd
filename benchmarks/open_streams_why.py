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
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import open_streams
from open_streams import Progress, Target

HERE = Path(__file__).resolve().parent
RAW = HERE / "results" / "tmp"
SLOW_TOKENS, SLOW_RATE = 80, 2.0  # the traced server's streams: 40 s each

# Inclusive steps of an open stream: a sample counts for a step when its stack holds all of the step's
# fragments and none of its exclusions. uvloop runs each task step from C, so a stack starts at the coroutine
# the loop resumed (the pump, a middleware's send, a protocol callback), not at the request.
STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "request start: the handler before the relay (auth, parse, reserve, upstream POST)": (
        ("MeteredExchange._exchange (",),
        ("MeteredStream", "Meter.settle", "_write_settlement"),
    ),
    "relay pump task (MeteredStream._pump and all it calls)": (("MeteredStream._pump (",), ()),
    "  reading the upstream (_RelayedStream.__anext__, aiohttp readany)": (
        ("MeteredStream._pump (", "__anext__ ("),
        (),
    ),
    "  SSEFrames.feed + event_data": (("MeteredStream._pump (", "sse_frames.py"), ()),
    "  orjson.loads + tally (_json_object, _content_only, _Tally.count)": (
        ("MeteredStream._pump (",),
        ("_flush (", "__anext__ (", "sse_frames.py", "_on_event ("),
    ),
    "  _on_event (usage chunk, [DONE]: the settle)": (("MeteredStream._pump (", "_on_event ("), ()),
    "  _flush: the ASGI send down the middleware chain to uvicorn": (("MeteredStream._pump (", "_flush ("), ()),
    "uvicorn RequestResponseCycle.send, all callers (its transport.write: the socket write)": (
        ("RequestResponseCycle.send (",),
        (),
    ),
    "aiohttp ResponseHandler.data_received (upstream bytes in, its C parser)": (
        ("ResponseHandler.data_received (",),
        (),
    ),
    "  of which re-arming the read timeout per read (_reschedule_timeout)": (("_reschedule_timeout (",), ()),
    "settling (HeldRequest.settle, the meter, its SQLite statements)": (("settle (",), ()),
    "  SQLite group commit (GroupCommit.flush)": (("GroupCommit.flush (",), ()),
    "request log + metrics (observability)": (("observability/",), ("RequestResponseCycle.send (", "_exchange (")),
}


# ---------------------------------------------------------------- in the server: heap dumps on a signal


def serve(port: int, dumps: str) -> None:
    """`open_streams.serve_uncapped`, answering two signals with a dump of its heap to `dumps`.<suffix>.

    SIGUSR2: a census of live Python objects by type (count, shallow bytes), GC-tracked objects and what
    they refer to directly (so bytes and str buffers count too). Costs nothing until asked.
    SIGUSR1: the first starts tracemalloc (4 frames; not at start-up, whose imports would crawl under it),
    each later one dumps a snapshot of what is alive of the allocations made since.
    """
    import gc

    censuses = iter(range(1_000_000))
    snapshots = iter(range(1_000_000))
    # Garbage collections by generation since the last census: count, seconds in all, the longest. A full
    # (generation 2) collection walks every tracked object, so its pause grows with the streams held.
    collections = {generation: [0, 0.0, 0.0] for generation in range(3)}
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        took = time.perf_counter() - began[0]
        entry = collections[info["generation"]]
        entry[0] += 1
        entry[1] += took
        entry[2] = max(entry[2], took)

    gc.callbacks.append(timed)

    def census(*_: object) -> None:
        gc_seen = {
            "collections": {
                str(g): {"count": c, "total_ms": 1000 * t, "max_ms": 1000 * m} for g, (c, t, m) in collections.items()
            },
            "frozen": gc.get_freeze_count(),
            "thresholds": gc.get_threshold(),
        }
        for entry in collections.values():
            entry[:] = [0, 0.0, 0.0]
        seen: set[int] = set()
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for container in gc.get_objects():
            for obj in (container, *gc.get_referents(container)):
                if id(obj) in seen:
                    continue
                seen.add(id(obj))
                kind = type(obj)
                name = f"{kind.__module__}.{kind.__qualname__}"
                counts[name] += 1
                sizes[name] += sys.getsizeof(obj)
        dump = {"counts": counts, "sizes": sizes, "gc": gc_seen}
        _write_atomically(Path(f"{dumps}.census{next(censuses)}"), json.dumps(dump))

    def trace(*_: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(4)
            Path(f"{dumps}.tracing").touch()
            return
        path = Path(f"{dumps}.snapshot{next(snapshots)}")
        tracemalloc.take_snapshot().dump(f"{path}.part")
        Path(f"{path}.part").replace(path)

    signal.signal(signal.SIGUSR2, census)
    signal.signal(signal.SIGUSR1, trace)
    open_streams.serve_uncapped(port)


def _write_atomically(path: Path, text: str) -> None:
    Path(f"{path}.part").write_text(text)
    Path(f"{path}.part").replace(path)  # whoever waits for the file never reads half of it


def _hit(joined: str, needed: tuple[str, ...], excluded: tuple[str, ...]) -> bool:
    return all(fragment in joined for fragment in needed) and not any(fragment in joined for fragment in excluded)


def analyse_cpu(raw: Path) -> dict[str, Any]:
    from profile_wattfare import IDLE_LEAVES, analyse

    result = analyse(raw)
    steps: Counter[str] = Counter(dict.fromkeys(STEPS, 0))
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            continue
        joined = ";".join(frames)
        for step, (needed, excluded) in STEPS.items():
            if _hit(joined, needed, excluded):
                steps[step] += int(count_text)
        if frames[-1].startswith("Runner.run ("):
            steps["event loop in C (uvloop: epoll, callbacks, syscalls; the leaf is Runner.run)"] += int(count_text)
    return {"samples": result["samples"], "components": result["components"], "steps": dict(steps)}


def profile_cpu(server: Any, seconds: float, out: Path) -> Any:
    """A `during` hook for `run_hold`: py-spy on the server from the end of the ramp for `seconds`."""

    async def during(progress: Progress) -> dict[str, Any]:
        await progress.ramped.wait()
        spy = str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--pid", str(server.tree()[0]), "--rate", "100", "--format", "raw"]
        command += ["--full-filenames", "--nolineno", "--nonblocking", "--duration", str(math.ceil(seconds))]
        command += ["-o", str(out)]
        before = server.cpu()
        began = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        said = (await process.communicate())[0].decode(errors="replace")
        if process.returncode:
            raise RuntimeError(f"py-spy failed ({process.returncode}): {said[-1000:]}")
        return {"cpu_s": server.cpu() - before, "wall_s": time.monotonic() - began}

    return during


def dump_when_open(server: Any, signum: int, dump: Path) -> Any:
    """A `during` hook: once every open stream has had its first event, send `signum`; wait for `dump`."""

    async def during(progress: Progress) -> dict[str, Any]:
        await progress.ramped.wait()
        for _ in range(300):  # at most 30 s: until (nearly) every open stream is in the relay, not queued before it
            if progress.streaming >= 0.97 * progress.open:
                break
            await asyncio.sleep(0.1)
        opened, streaming = progress.open, progress.streaming
        server.process.send_signal(signum)
        await asyncio.to_thread(_wait_for_file, dump)
        return {"open_at_dump": opened, "streaming_at_dump": streaming}

    return during


def census_growth(idle: Path, loaded: Path, streams: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per open stream: how many more objects of each type, and their bytes (the 30 largest); and the GCs between."""
    before, after = json.loads(idle.read_text()), json.loads(loaded.read_text())
    rows = [
        {
            "type": name,
            "objects": (after["counts"][name] - before["counts"].get(name, 0)) / streams,
            "bytes": (size - before["sizes"].get(name, 0)) / streams,
        }
        for name, size in after["sizes"].items()
    ]
    return sorted(rows, key=lambda row: -row["bytes"])[:30], after["gc"]


def _wait_for_file(path: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the traced server wrote no {path.name}")
        time.sleep(0.2)


def component_of(traceback: tracemalloc.Traceback) -> str:
    from profile_wattfare import component

    for frame in reversed(traceback):  # the allocating frame first, then its callers
        named = component(frame.filename)
        if named is not None:
            return named
    return "other (interpreter, stdlib)"


def caller_in_our_code(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in Wattfare, uvicorn or aiohttp: who asked for the allocation."""
    for frame in reversed(traceback):
        for fragment in ("wattfare/", "uvicorn/", "aiohttp/", "starlette/"):
            if fragment in frame.filename:
                return f"{frame.filename.split(fragment)[-1]}:{frame.lineno} ({fragment.rstrip('/')})"
    return "-"


def analyse_memory(loaded: Path, streams: int) -> dict[str, Any]:
    """What was allocated since tracing started (idle) and is alive with `streams` open, per open stream."""
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
    ]
    by_trace = tracemalloc.Snapshot.load(str(loaded)).filter_traces(ignore).statistics("traceback")
    components: Counter[str] = Counter()
    sites: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for stat in by_trace:
        components[component_of(stat.traceback)] += stat.size
        innermost = stat.traceback[-1]
        site = (f"{_short(innermost.filename)}:{innermost.lineno}", caller_in_our_code(stat.traceback))
        sites[site] += stat.size
        counts[site] += stat.count
    total = sum(s.size for s in by_trace)
    return {
        "streams": streams,
        "python_heap_growth_kib": total / 1024,
        "per_stream_bytes": total / streams,
        "components_per_stream_bytes": {k: v / streams for k, v in components.most_common()},
        "sites_per_stream": [
            {"site": site, "caller": caller, "bytes": size / streams, "blocks": counts[(site, caller)] / streams}
            for (site, caller), size in sites.most_common(30)
        ],
    }


def _short(filename: str) -> str:
    for fragment in ("site-packages/", "lib/python3.11/", "src/"):
        if fragment in filename:
            return filename.split(fragment, 1)[1]
    return filename


def print_cpu(profile: dict[str, Any], hold: dict[str, Any]) -> None:
    beside = hold["beside"]
    per_token_us = 1e6 * beside["cpu_s"] / max(1, hold["cpu"]["tokens"]) * (hold["cpu"]["wall_s"] / beside["wall_s"])
    # The sampled window is the plateau and the drain; CPU per token over the whole hold scales the shares.
    us = hold["cpu"]["server_us_per_token"]
    total = max(1, profile["samples"])
    print(f"\n## CPU: {hold['n']} streams, {us:.1f} µs server CPU per token (whole hold), {total} samples")
    print(f"   (py-spy window: {beside['cpu_s'] / beside['wall_s']:.2f} cores; per token there ~{per_token_us:.1f} µs)")
    for name, count in profile["components"].items():
        print(f"  {100 * count / total:5.1f}%  {us * count / total:6.1f} µs/token  {name}")
    print("  steps (inclusive):")
    for name, count in profile["steps"].items():
        print(f"  {100 * count / total:5.1f}%  {us * count / total:6.1f} µs/token  {name}")


def print_memory(
    heap: dict[str, Any],
    types: list[dict[str, Any]],
    cpu_hold: dict[str, Any],
    census_hold: dict[str, Any],
    traced_hold: dict[str, Any],
) -> None:
    # The CPU hold's RSS: the census's own bookkeeping (a set of every object's id) swells the census hold's.
    rss = cpu_hold["rss"]
    streams = census_hold["beside"]["open_at_dump"]
    print(f"\n## memory: RSS growth per open stream, from outside (first hold): {rss['per_open_stream_kib']:.1f} KiB")
    print(f"  live Python objects per open stream ({streams} open at the census, not traced):")
    print(f"  {sum(row['bytes'] for row in types if row['bytes'] > 0):8.0f} B  all types that grew")
    for row in types[:20]:
        print(f"  {row['bytes']:8.0f} B {row['objects']:6.1f} objects  {row['type']}")
    print(
        f"\n  tracemalloc ({heap['streams']} open, {traced_hold['beside']['streaming_at_dump']} streaming; "
        f"slow streams): {heap['per_stream_bytes']:.0f} B Python heap per open stream"
    )
    for name, size in heap["components_per_stream_bytes"].items():
        print(f"  {size:8.0f} B  {name}")
    print("  allocation sites (innermost frame; the nearest Wattfare/uvicorn/aiohttp/starlette caller):")
    for site in heap["sites_per_stream"][:20]:
        print(f"  {site['bytes']:8.0f} B {site['blocks']:5.1f} blocks  {site['site']}  <- {site['caller']}")


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
    cpu_hold = await open_streams.run_hold(
        targets[0], standin, args.n, args, profile_cpu(targets[0].server, seconds, raw)
    )
    profile = analyse_cpu(raw)

    plain, traced = targets[0].server, targets[1].server
    plain.process.send_signal(signal.SIGUSR2)  # the idle census
    await asyncio.to_thread(_wait_for_file, Path(f"{dump}-plain.census0"))
    census = dump_when_open(plain, signal.SIGUSR2, Path(f"{dump}-plain.census1"))
    census_hold = await open_streams.run_hold(targets[0], standin, args.n, args, census)
    streams = census_hold["beside"]["open_at_dump"]
    types, collections = census_growth(Path(f"{dump}-plain.census0"), Path(f"{dump}-plain.census1"), streams)

    traced.process.send_signal(signal.SIGUSR1)  # tracing starts now, idle (after the warm-up)
    await asyncio.to_thread(_wait_for_file, Path(f"{dump}-traced.tracing"))
    snapshot = dump_when_open(traced, signal.SIGUSR1, Path(f"{dump}-traced.snapshot0"))
    traced_hold = await open_streams.run_hold(targets[1], slow, args.n, slow_args, snapshot)
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
