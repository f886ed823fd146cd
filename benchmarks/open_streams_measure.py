"""One hold of `open_streams.py` measured from outside: the server's memory, loop lag, TTFB and CPU per token.

`run_hold` starts the load client (`open_streams_load.py`, a process of its own), follows its progress, opens the
probe streams once the N streams are held, samples RSS from /proc and probes the event loop; `summarise_hold`
turns what it saw into the hold's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from open_streams_load import Hold, Stream, lag_probe, ms, percentile, request_bytes
from processes import cpu_split, status_kib

HERE = Path(__file__).resolve().parent
PROBES_PER_SECOND = 10


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
