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
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from open_streams_load import Hold, Stream, lag_probe, ms, percentile, request_bytes
from processes import status_kib

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "open_streams.json"
PROBES_PER_SECOND = 10
STANDIN_LABELS = {"c": "direct (drip_standin.c)", "njs": "direct (nginx + njs drip)"}


# ---------------------------------------------------------------- measuring from outside (this process)


@dataclass
class Target:
    """One server under test: where its streams go, its cheap endpoint, and the processes charged."""

    name: str
    label: str
    port: int
    path: str
    model: str
    health: str
    server: Any  # processes.Server
    headers: dict[str, str] = field(default_factory=dict[str, str])
    user_header: str | None = None
    metered: bool = False  # every stream must end with Wattfare's metered chunk


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the listed processes: system is the kernel's share (socket I/O, epoll)."""
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def listen_overflows() -> int:
    """The machine's count of connections dropped because a listening socket's accept queue was full."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))


def rss_kib(pids: list[int]) -> int:
    """Sum of VmRSS (resident now) over the listed processes."""
    return status_kib(pids, "VmRSS")


async def probe_streams(target: Target, tokens: int, window: asyncio.Event, hold: Hold) -> None:
    """While `window` is set, open a stream PROBES_PER_SECOND times a second; `hold` records each."""
    loop = asyncio.get_running_loop()
    await window.wait()
    tasks: set[asyncio.Task[Any]] = set()
    index = 0
    while window.is_set():
        user = {target.user_header: f"os-probe-{index}"} if target.user_header else {}
        stream = Stream(hold, request_bytes(target.port, target.path, target.headers | user, target.model, tokens))
        hold.open_streams.add(stream)
        hold.n += 1
        task = asyncio.ensure_future(loop.create_connection(lambda s=stream: s, "127.0.0.1", target.port))
        tasks.add(task)
        task.add_done_callback(lambda t, s=stream: _probe_connected(t, s, hold))
        index += 1
        await asyncio.sleep(1 / PROBES_PER_SECOND)
    hold.all_ended.clear()
    if hold.ended < hold.n:
        await hold.all_ended.wait()


def _probe_connected(task: asyncio.Task[Any], stream: Stream, hold: Hold) -> None:
    if not task.cancelled() and task.exception() is not None and stream in hold.open_streams:
        hold.open_streams.discard(stream)
        hold.fail(f"connect: {type(task.exception()).__name__}")


@dataclass
class Progress:
    """What the load client last reported, and the samples taken beside it."""

    ramped: asyncio.Event = field(default_factory=asyncio.Event)
    ramped_at: float = 0.0
    open: int = 0
    streaming: int = 0
    ended: int = 0
    result: dict[str, Any] | None = None
    samples: list[dict[str, float]] = field(default_factory=list[dict[str, float]])
    # When the probe streams ran: "steady" (every open stream had its first event: N streams held, nothing
    # queued) or "backlog" (the server never caught up with the ramp; probed half a drip after it anyway).
    window_mode: str = "none"
    window_closed: bool = False


async def read_client(
    process: asyncio.subprocess.Process, progress: Progress, window: asyncio.Event, n: int, patience: float
) -> None:
    """Follow the load client; open the probe window once the N streams are held, close it as they end."""
    assert process.stdout is not None
    ended_at_open = 0
    async for raw in process.stdout:
        line = raw.decode().strip()
        if line == "RAMPED":
            progress.ramped.set()
            progress.ramped_at = time.monotonic()
        elif line.startswith("P "):
            state = json.loads(line[2:])
            progress.open, progress.streaming, progress.ended = state["open"], state["streaming"], state["ended"]
            if window.is_set() and progress.ended - ended_at_open > n // 100:  # the plateau is over
                window.clear()
                progress.window_closed = True
            elif progress.ramped.is_set() and not window.is_set() and not progress.window_closed:
                steady = progress.streaming >= 0.99 * progress.open
                if steady or time.monotonic() > progress.ramped_at + patience:
                    progress.window_mode = "steady" if steady else "backlog"
                    ended_at_open = progress.ended
                    window.set()
        elif line.startswith("RESULT "):
            progress.result = json.loads(line[7:])
            window.clear()
            progress.window_closed = True


async def sample(target: Target, standin: Any, progress: Progress, probes: Hold, stop: asyncio.Event) -> None:
    """Every 250 ms: the server's and the stand-in's RSS, and the streams open then (the probes' too)."""
    while not stop.is_set():
        progress.samples.append(
            {
                "t": time.monotonic(),
                "open": progress.open + probes.connected - probes.disconnected,
                "streaming": progress.streaming + probes.streaming,
                "rss_kib": rss_kib(target.server.tree()),
                "standin_rss_kib": rss_kib(standin.tree()),
            }
        )
        await asyncio.sleep(0.25)


async def idle_lag(target: Target, seconds: float) -> list[float]:
    stop = asyncio.Event()
    samples: list[float] = []
    errors: list[str] = []
    task = asyncio.ensure_future(lag_probe(target.port, target.health, stop, samples, errors))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    if errors:
        raise RuntimeError(f"{target.name}: the idle probe of {target.health} failed: {errors[:5]}")
    return samples


async def quiet(server: Any, limit_cores: float = 0.05, longest: float = 20.0) -> None:
    """Wait until `server` uses less than `limit_cores` (what the last hold left behind has settled)."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = server.cpu()
        await asyncio.sleep(0.5)
        if (server.cpu() - before) / 0.5 < limit_cores:
            return


async def run_hold(
    target: Target,
    standin: Any,
    n: int,
    args: argparse.Namespace,
    during: Callable[[Progress], Awaitable[Any]] | None = None,
) -> dict[str, Any]:
    """Hold `n` streams through `target`, measuring from outside; `during` (a profiler) runs beside, its result kept."""
    from processes import system_busy_seconds

    await quiet(target.server)
    await quiet(standin)
    nominal = args.tokens / args.rate
    ramp = args.ramp if args.ramp is not None else min(5.0, max(0.5, n / 1000))
    idle_rss = rss_kib(target.server.tree())
    idle = await idle_lag(target, args.idle_seconds)
    config = {
        "n": n,
        "ramp": ramp,
        "port": target.port,
        "path": target.path,
        "headers": target.headers,
        "user_header": target.user_header,
        "users": args.users,
        "model": target.model,
        "tokens": args.tokens,
        "deadline": ramp + 1.5 * nominal + 10,  # a stream still open 1.5 drips + 10 s after the ramp is an error
    }
    progress, window, stop = Progress(), asyncio.Event(), asyncio.Event()
    probes = Hold(0)
    lag: list[float] = []
    lag_errors: list[str] = []
    split0 = cpu_split(target.server.tree())
    overflows = listen_overflows()
    cpu0 = (target.server.cpu(), standin.cpu(), _own_cpu(), system_busy_seconds(), time.monotonic())
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "open_streams_load.py"), json.dumps(config), stdout=asyncio.subprocess.PIPE
    )
    tasks = [
        asyncio.ensure_future(read_client(process, progress, window, n, nominal / 2)),
        asyncio.ensure_future(sample(target, standin, progress, probes, stop)),
        asyncio.ensure_future(lag_probe(target.port, target.health, stop, lag, lag_errors)),
    ]
    prober = asyncio.ensure_future(probe_streams(target, args.tokens, window, probes))
    beside = asyncio.ensure_future(during(progress)) if during is not None else None
    await process.wait()
    await tasks[0]
    window.clear()
    if not progress.ramped.is_set():
        prober.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(prober), max(5.0, nominal))  # probes end with the bulk
    except (TimeoutError, asyncio.CancelledError):
        prober.cancel()
    probes.close_all("still open at the deadline")
    stop.set()
    await asyncio.gather(*tasks[1:])
    cpu1 = (target.server.cpu(), standin.cpu(), _own_cpu(), system_busy_seconds(), time.monotonic())
    split1 = cpu_split(target.server.tree())
    result = progress.result
    if result is None:
        raise RuntimeError(f"{target.name}: the load client gave no result (exit {process.returncode})")
    after_rss = rss_kib(target.server.tree())
    summary = summarise_hold(
        target, standin, n, ramp, result, probes, lag, lag_errors, idle, idle_rss, after_rss, progress, cpu0, cpu1
    )
    summary["cpu"]["server_system_share"] = (split1[1] - split0[1]) / max(1e-9, sum(split1) - sum(split0))
    # Machine-wide, but during a hold the new connections are this hold's: accept queues that overflowed.
    summary["listen_overflows"] = listen_overflows() - overflows
    if beside is not None:
        summary["beside"] = await beside
    return summary


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summarise_hold(
    target: Target,
    standin: Any,
    n: int,
    ramp: float,
    client: dict[str, Any],
    probes: Hold,
    lag: list[float],
    lag_errors: list[str],
    idle: list[float],
    idle_rss: int,
    after_rss: int,
    progress: Progress,
    cpu0: tuple[float, ...],
    cpu1: tuple[float, ...],
) -> dict[str, Any]:
    server_s, standin_s, own_s, busy_s, wall = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    most_open = max((s["open"] for s in progress.samples), default=0)
    plateau = [s for s in progress.samples if most_open and s["open"] >= 0.98 * most_open]
    plateau_rss = statistics.median(s["rss_kib"] for s in plateau) if plateau else None
    plateau_open = statistics.median(s["open"] for s in plateau) if plateau else 0
    tokens = client["tokens"] + probes.tokens
    errors = dict(client["errors"])
    for reason, count in probes.errors.items():
        errors[f"probe {reason}"] = errors.get(f"probe {reason}", 0) + count
    if target.metered:
        unmetered = client["unmetered"] + probes.unmetered
        if unmetered:
            errors["ended without the metered chunk"] = unmetered
    for reason in lag_errors:
        errors[f"lag probe {reason}"] = errors.get(f"lag probe {reason}", 0) + 1
    return {
        "target": target.name,
        "label": target.label,
        "n": n,
        "ramp_s": ramp,
        "client": client,
        "streams_ok": client["ok"] + len(probes.duration),
        "streams": client["n"] + probes.n,
        "errors": errors,
        "error_count": sum(errors.values()),
        "rss": {
            "idle_kib": idle_rss,
            "plateau_kib": plateau_rss,
            "plateau_open": plateau_open,
            "plateau_streaming": statistics.median(s["streaming"] for s in plateau) if plateau else 0,
            "peak_kib": max((s["rss_kib"] for s in progress.samples), default=None),
            "after_kib": after_rss,
            "per_open_stream_kib": (plateau_rss - idle_rss) / plateau_open if plateau_rss and plateau_open else None,
            "standin_peak_kib": max((s["standin_rss_kib"] for s in progress.samples), default=None),
        },
        "lag": {
            "idle_samples": len(idle),
            "idle_p50_ms": ms(percentile(idle, 50)),
            "idle_p99_ms": ms(percentile(idle, 99)),
            "loaded_samples": len(lag),
            "loaded_p50_ms": ms(percentile(lag, 50)),
            "loaded_p99_ms": ms(percentile(lag, 99)),
            "loaded_max_ms": ms(max(lag, default=None)),
            "added_p99_ms": ms(percentile(lag, 99) - percentile(idle, 99)) if lag and idle else None,  # type: ignore[operator]
        },
        "ttfb_probe": {
            "window": progress.window_mode,
            "samples": len(probes.ttfb),
            "p50_ms": ms(percentile(probes.ttfb, 50)),
            "p99_ms": ms(percentile(probes.ttfb, 99)),
            "max_ms": ms(max(probes.ttfb, default=None)),
        },
        "cpu": {
            "wall_s": wall,
            "server_s": server_s,
            "standin_s": standin_s,
            "client_s": client["cpu_s"],
            "orchestrator_s": own_s,
            "machine_s": busy_s,
            # The direct target is the stand-in itself: its CPU is counted once.
            "other_s": busy_s - server_s - (0 if target.server is standin else standin_s) - client["cpu_s"] - own_s,
            "tokens": tokens,
            "server_us_per_token": 1e6 * server_s / tokens if tokens else None,
            "standin_us_per_token": 1e6 * standin_s / tokens if tokens else None,
        },
        "timeline": progress.samples,
    }


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


def row_text(hold: dict[str, Any], holds: list[dict[str, Any]]) -> str:
    return " | ".join(str(v) for v in table_row(hold, holds))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def held(hold: dict[str, Any]) -> bool:
    """Whether (nearly) every stream open at the plateau was in the relay, not queued before it.

    A server behind on its ramp has streams waiting in its accept queue or for the loop: they cost it little
    memory yet, so its RSS per open stream says nothing about what holding a stream costs.
    """
    return hold["rss"]["plateau_streaming"] >= 0.95 * hold["rss"]["plateau_open"]


def direct_for(hold: dict[str, Any], holds: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((h for h in holds if h["target"] == "direct" and h["n"] == hold["n"] and "failed" not in h), None)


def table_row(hold: dict[str, Any], holds: list[dict[str, Any]]) -> list[str]:
    if "failed" in hold:
        return [hold["label"], f"{hold['n']:,}", "-", f"failed: {hold['failed'][:200]}", *["-"] * (len(HEADER) - 4)]
    direct = direct_for(hold, holds)
    probe = hold["ttfb_probe"]["p99_ms"]
    added = None
    if hold["target"] != "direct" and direct is not None and probe is not None and direct["ttfb_probe"]["p99_ms"]:
        added = probe - direct["ttfb_probe"]["p99_ms"]
    cpu, rss, lag, client = hold["cpu"], hold["rss"], hold["lag"], hold["client"]
    errors = ", ".join(f"{v} {k}" for k, v in hold["errors"].items()) or "0"
    if hold.get("listen_overflows"):
        errors += f" ({hold['listen_overflows']:,} accept-queue overflows on the machine)"
    return [
        hold["label"],
        f"{hold['n']:,}",
        f"{hold['streams_ok']:,} / {hold['streams']:,}",
        errors,
        f"{_fmt(rss['per_open_stream_kib'])} ({rss['plateau_open']:,.0f} open"
        + ("" if held(hold) else f", {rss['plateau_streaming']:,.0f} in the relay")
        + ")",
        f"{_fmt(lag['added_p99_ms'])} ({_fmt(lag['idle_p99_ms'], 2)} idle)",
        f"{_fmt(probe)}"
        + ("" if added is None else f" (+{_fmt(added)})")
        + (" backlog" if hold["ttfb_probe"].get("window") == "backlog" else ""),
        f"{_fmt(client['ttfb_p50_ms'])} / {_fmt(client['ttfb_p99_ms'])}",
        f"{_fmt(client['duration_p50_s'], 2)} / {_fmt(client['duration_p99_s'], 2)}",
        _fmt(cpu["server_us_per_token"]),
        f"{cpu['server_s'] / cpu['wall_s']:.2f} / {cpu['standin_s'] / cpu['wall_s']:.2f} / "
        f"{cpu['client_s'] / cpu['wall_s']:.2f} / {cpu['other_s'] / cpu['wall_s']:.2f}",
    ]


HEADER = [
    "target",
    "N",
    "streams ok / all",
    "errors",
    "RSS KiB per open stream",
    "added loop lag p99 ms (probe idle p99)",
    "probe TTFB p99 ms (added vs direct)",
    "bulk TTFB p50 / p99 ms",
    "stream s p50 / p99",
    "server CPU µs / token",
    "cores: server / stand-in / client / other work",
]


def markdown(results: dict[str, Any]) -> str:
    holds = results["holds"]
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(table_row(h, holds)) + " |" for h in holds),
    ]
    goals = [h for h in holds if h["target"].startswith("wattfare") and "failed" not in h]
    if goals:
        lines += ["", "| goal (one worker) | server | N | measured | target | met |", "|---|---|---|---|---|---|"]
        for hold in goals:
            direct = direct_for(hold, holds)
            per_stream = hold["rss"]["per_open_stream_kib"]
            probe = hold["ttfb_probe"]["p99_ms"]
            added = None
            if direct is not None and probe is not None and direct["ttfb_probe"]["p99_ms"] is not None:
                added = probe - direct["ttfb_probe"]["p99_ms"]
            if not held(hold):
                per_stream = None  # see `held`: queued streams, not held ones
            checks = [
                ("RSS per open stream", per_stream, "≤ 20 KiB", per_stream is not None and per_stream <= 20, "KiB"),
                ("added TTFB p99", added, "≤ 5 ms", added is not None and added <= 5, "ms"),
                ("errors", hold["error_count"], "0", hold["error_count"] == 0, ""),
            ]
            for name, value, target, met, unit in checks:
                shown = "-" if value is None else f"{value:,.1f} {unit}".strip()
                if name.startswith("RSS") and not held(hold):
                    shown = "- (most open streams were queued, not in the relay)"
                met_text = "yes" if met else "**no**"
                lines.append(f"| {name} | {hold['label']} | {hold['n']:,} | {shown} | {target} | {met_text} |")
    lines += [
        "",
        '"backlog": the server never had every open stream streaming (it had not caught up with the ramp), so',
        "its probes waited behind the queued starts; otherwise they ran while all N streams were held.",
    ]
    if results.get("skipped"):
        lines += ["", *(f"- {name}: {why.splitlines()[0]}" for name, why in results["skipped"].items())]
    return "\n".join(lines) + "\n"


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
