"""Load generation: `wrk` with generated Lua scripts, and a raw-socket client for time-to-first-byte.

wrk measures request latency (write to last byte) and throughput but cannot see the first byte of a
stream, so TTFB at concurrency 1 is measured by `measure_ttfb`: one keep-alive socket per target, an
HTTP/1.1 request written by hand, the clock stopped when the first body chunk (the first SSE event)
arrives, and the rest read to the end of the chunked (or Content-Length) body. Targets are visited in
turn, request by request, so machine noise lands on all of them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import Server

SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
USER_PROMPT = "Say hello in ten words."


@dataclass(frozen=True)
class Target:
    """One thing under load: where to send, with which headers, which server process to charge."""

    name: str
    port: int
    path: str
    model: str
    stream_model: str
    headers: dict[str, str] = field(default_factory=dict)
    user_header: str | None = None  # the header naming the end user, when the target meters per user
    server: str | None = None  # the key of the Server whose CPU and memory are accounted


def request_body(model: str, *, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for this ASCII text


def wrk_script(target: Target, *, stream: bool, users: int) -> str:
    """A wrk Lua script: POST the body with the target's headers; `users` > 1 spreads over that many users."""
    body = request_body(target.stream_model if stream else target.model, stream=stream).decode()
    headers = {"Content-Type": "application/json", **target.headers}
    if stream:
        headers["Accept"] = "text/event-stream"
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if target.user_header and users <= 1:
        lines.append(f'wrk.headers[{_lua_string(target.user_header)}] = "bench-user"')
    elif target.user_header:
        # Each thread walks the users in its own stride, so the first requests touch every user.
        lines += [
            "local threads = 0",
            "function setup(thread) thread:set('tid', threads); threads = threads + 1 end",
            "local counter = 0",
            "function request()",
            "  counter = counter + 1",
            f"  wrk.headers[{_lua_string(target.user_header)}] = 'bench-' .. ((counter * 2 + (tid or 0)) % {users})",
            "  return wrk.format()",
            "end",
        ]
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format(\'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%f}\\n\', '
        "summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, "
        "latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))",
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def run_wrk(script: Path, url: str, *, connections: int, seconds: float, threads: int) -> WrkResult:
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    command += ["-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=raw["errors"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
    )


def wrk_cpu(
    server: Server, target: Target, *, stream: bool, users: int, connections: int, seconds: float, tmp: Path
) -> dict[str, float]:
    """One wrk run against `target`, with the CPU `server`'s processes used per request; any failed request raises."""
    script = tmp / f"wrk-{target.name}-{stream}-{users}-{connections}.lua"
    script.write_text(wrk_script(target, stream=stream, users=users))
    before = server.cpu()
    result = run_wrk(
        script,
        f"http://127.0.0.1:{target.port}{target.path}",
        connections=connections,
        seconds=seconds,
        threads=1 if connections == 1 else 2,
    )
    cpu = server.cpu() - before
    if result.failed:
        raise RuntimeError(f"{target.name} (stream={stream}, c={connections}) had errors: {result.errors}")
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "cpu_ms_per_request": 1000 * cpu / max(1, result.requests),
    }


# ---------------------------------------------------------------- time to first byte


class _Connection:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        body = request_body(target.stream_model, stream=True)
        headers = {
            "Host": f"127.0.0.1:{target.port}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **target.headers,
        }
        if target.user_header:
            headers[target.user_header] = "bench-user"
        headers["Content-Length"] = str(len(body))
        head = f"POST {target.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.request = head.encode() + body

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.target.port)
        return self.reader, self.writer

    async def timed(self) -> tuple[float, float, bytes]:
        """(seconds to the first body byte, seconds to the end, the body) of one streamed request."""
        reader, writer = await self._open()
        started = time.perf_counter()
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        first: float | None = None
        parts: list[bytes] = []
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunk = await reader.readexactly(size + 2)
                if first is None:
                    first = time.perf_counter()
                parts.append(chunk[:-2])
        else:
            length = int(fields.get(b"content-length", b"0"))
            if length:
                part = await reader.read(length)
                first = time.perf_counter()
                parts.append(part)
                remaining = length - len(part)
                if remaining:
                    parts.append(await reader.readexactly(remaining))
        ended = time.perf_counter()
        if fields.get(b"connection", b"").lower() == b"close":
            writer.close()
            self.reader = self.writer = None
        body = b"".join(parts)
        if status != 200:
            raise RuntimeError(f"{self.target.name}: status {status}: {body[:300]!r}")
        return (first or ended) - started, ended - started, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):  # the server may have dropped it already
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass(frozen=True)
class TTFBResult:
    samples: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    total_p50_ms: float
    total_p99_ms: float


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure_ttfb(targets: list[Target], requests: int, warmup: int = 5, burst: int = 50) -> dict[str, TTFBResult]:
    """Streamed requests at concurrency 1: `requests` per target, in bursts of `burst` back-to-back requests.

    Targets take turns burst by burst, in a random order each turn, so machine noise lands on all of them
    alike. Back-to-back within a burst, as wrk's c=1 runs are: a request interleaved alone between other
    targets' finds every process of a proxy chain cold (three wake-ups for a proxy, one for nginx) and
    measured that, not the proxy, adding 0.5-1 ms to the bare pass-through whose whole stream wrk times
    at 0.4 ms. The first `warmup` requests of every burst are not counted.
    """

    async def run() -> dict[str, TTFBResult]:
        connections = [_Connection(t) for t in targets]
        firsts: dict[str, list[float]] = {t.name: [] for t in targets}
        totals: dict[str, list[float]] = {t.name: [] for t in targets}
        per_burst = max(1, min(burst, requests))
        try:
            for _ in range(-(-requests // per_burst)):
                random.shuffle(connections)
                for connection in connections:
                    name = connection.target.name
                    # A fresh connection per burst: servers drop keep-alive connections idle for a few
                    # seconds (uvicorn after 5), as these are while the other targets take their turn.
                    await connection.close()
                    for index in range(warmup + per_burst):
                        first, total, body = await connection.timed()
                        if b"[DONE]" not in body:
                            raise RuntimeError(f"{name}: stream without [DONE]: {body[-300:]!r}")
                        if index >= warmup and len(firsts[name]) < requests:
                            firsts[name].append(first * 1000)
                            totals[name].append(total * 1000)
        finally:
            for connection in connections:
                await connection.close()
        return {
            name: TTFBResult(
                samples=len(firsts[name]),
                ttfb_p50_ms=statistics.median(firsts[name]),
                ttfb_p99_ms=_percentile(firsts[name], 99),
                total_p50_ms=statistics.median(totals[name]),
                total_p99_ms=_percentile(totals[name], 99),
            )
            for name in firsts
        }

    return asyncio.run(run())
