"""The load side of open_streams.py: N slow streams held open by one process that stays out of the way.

`python open_streams_load.py '<json config>'` (started by open_streams.py, one process per hold) opens
N streamed chat requests over a ramp, one connection each, and holds each to its end. It is uvloop with
one asyncio Protocol per stream that never parses JSON: per read it counts the content tokens (a byte
pattern), notes the first SSE event, [DONE], Wattfare's metered chunk and the chunked body's end. Every
250 ms it prints a progress line (`P {...}`: open, streaming, ended), `RAMPED` once every stream has been
launched, and at the end `RESULT {...}`: counts, errors, TTFB and duration percentiles, its own CPU.

open_streams.py (its hold, in open_streams_measure.py) uses the same `Stream` for its probe streams and `lag_probe`
for its event-loop probe.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN = b'"content":"word'  # one per content chunk of the drip (and as proxies re-encode it)
CARRY = len(TOKEN) - 1  # bytes kept from the previous read, so a pattern split across reads counts once
LAG_EVERY = 0.02


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def request_bytes(port: int, path: str, headers: dict[str, str], model: str, tokens: int) -> bytes:
    """A streamed chat request written by hand, asking for `tokens` tokens (the drip stops there)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello, slowly."}],
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    fields = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "Accept": "text/event-stream"}
    fields |= headers | {"Content-Length": str(len(raw))}
    return (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode() + raw


# ---------------------------------------------------------------- streams


class Stream(asyncio.Protocol):
    """One streamed request on its own connection: counts tokens, notes the first event and the end."""

    __slots__ = (
        "carry",
        "done",
        "error",
        "first",
        "headed",
        "hold",
        "last",
        "metered",
        "request",
        "started",
        "tokens",
        "transport",
    )

    def __init__(self, hold: Hold, request: bytes) -> None:
        self.hold = hold
        self.request = request
        self.started = time.monotonic()
        self.headed = False
        self.first = 0.0
        self.transport: asyncio.Transport | None = None
        self.carry = b""  # None of the head is kept once parsed: just the last bytes, for split patterns
        self.tokens = 0
        self.last = b""  # the last read: what a failed stream said last (a sample goes in the result)
        self.done = False  # [DONE] seen
        self.metered = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.hold.connected += 1
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if not self.first:
            data = self._before_first_event(data)
            if not data:
                return
        self.last = data
        seen = self.carry + data
        self.tokens += seen.count(TOKEN)
        if not self.done and b"[DONE]" in seen:
            self.done = True
        if not self.metered and b'"wattfare"' in seen:
            self.metered = True
        self.carry = seen[-CARRY:]
        if self.done and seen.endswith(b"0\r\n\r\n"):  # the chunked body's last chunk
            self._end(None)

    def _before_first_event(self, data: bytes) -> bytes:
        """Read the head, then wait for the first event; return what is left to count (b"" when nothing yet)."""
        if not self.headed:
            head = self.carry + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.carry = head
                return b""
            if head[9:12] != b"200":
                self.last = head
                self._end(f"status {head[9:12].decode(errors='replace')}")
                return b""
            self.headed = True
            self.carry = b""
            data = head[end + 4 :]
        if b"data: " not in self.carry[-5:] + data:
            self.carry = (self.carry + data)[-CARRY:]
            return b""
        self.first = time.monotonic()
        self.hold.streaming += 1
        return data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            how = f"closed before [DONE] ({type(exc).__name__ if exc else 'by the server'})"
            self._end(None if self.done else how)

    def _end(self, error: str | None) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        transport.close()
        self.error = error
        self.hold.finish(self)


@dataclass
class Hold:
    """The bulk of one run: N streams, launched over the ramp, each recorded when it ends."""

    n: int
    connected: int = 0
    disconnected: int = 0
    streaming: int = 0
    ended: int = 0
    open_streams: set[Stream] = field(default_factory=set[Stream])
    ttfb: list[float] = field(default_factory=list[float])
    duration: list[float] = field(default_factory=list[float])
    tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict[str, int])
    unmetered: int = 0
    said: dict[str, list[str]] = field(default_factory=dict[str, list[str]])  # a few failed streams' last reads
    all_ended: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self, stream: Stream) -> None:
        self.open_streams.discard(stream)
        self.disconnected += 1
        if stream.first:
            self.streaming -= 1
            self.ttfb.append(stream.first - stream.started)
        self.ended += 1
        self.tokens += stream.tokens
        if stream.error is not None:
            self.errors[stream.error] = self.errors.get(stream.error, 0) + 1
            samples = self.said.setdefault(stream.error, [])
            if len(samples) < 3:
                samples.append(stream.last[-300:].decode(errors="replace"))
        else:
            self.duration.append(time.monotonic() - stream.started)
            if not stream.metered:
                self.unmetered += 1
        if self.ended >= self.n:
            self.all_ended.set()

    def close_all(self, reason: str) -> None:
        """End every stream still open (connected or not), each counted as failed for `reason`."""
        for stream in list(self.open_streams):
            if stream.transport is None:  # still connecting: `connect` will not report it any more
                self.open_streams.discard(stream)
                self.fail(reason)
            else:
                stream.transport.close()
                stream.transport = None
                stream.error = reason
                self.finish(stream)

    def fail(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.ended += 1
        if self.ended >= self.n:
            self.all_ended.set()


async def hold_streams(config: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n, ramp, port = int(config["n"]), float(config["ramp"]), int(config["port"])
    users = max(1, int(config["users"]))
    requests = [
        request_bytes(
            port,
            config["path"],
            config["headers"] | ({config["user_header"]: f"os-{i}"} if config["user_header"] else {}),
            config["model"],
            int(config["tokens"]),
        )
        for i in range(min(users, n))
    ]
    hold = Hold(n)
    started = time.monotonic()

    async def connect(index: int) -> None:
        stream = Stream(hold, requests[index % len(requests)])
        hold.open_streams.add(stream)
        try:
            await loop.create_connection(lambda: stream, "127.0.0.1", port)
        except OSError as exc:
            if stream in hold.open_streams:  # not already given up at the deadline
                hold.open_streams.discard(stream)
                hold.fail(f"connect: {type(exc).__name__}")

    async def launch() -> None:
        tasks: set[asyncio.Task[None]] = set()
        for index in range(n):
            due = started + ramp * index / n
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            task = asyncio.ensure_future(connect(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        print("RAMPED", flush=True)
        if tasks:
            await asyncio.wait(tasks)

    async def report() -> None:
        while True:
            print(
                "P "
                + json.dumps(
                    {
                        "t": time.monotonic(),
                        "open": hold.connected - hold.disconnected,
                        "streaming": hold.streaming,
                        "ended": hold.ended,
                    }
                ),
                flush=True,
            )
            await asyncio.sleep(0.25)

    reporter = asyncio.ensure_future(report())
    launcher = asyncio.ensure_future(launch())
    try:
        await asyncio.wait_for(hold.all_ended.wait(), float(config["deadline"]))
    except TimeoutError:
        pass
    finally:
        reporter.cancel()
        launcher.cancel()
    hold.close_all("still open at the deadline")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "n": n,
        "ok": len(hold.duration),
        "errors": hold.errors,
        "unmetered": hold.unmetered,
        "said": hold.said,
        "tokens": hold.tokens,
        "seconds": time.monotonic() - started,
        "ttfb_p50_ms": ms(percentile(hold.ttfb, 50)),
        "ttfb_p99_ms": ms(percentile(hold.ttfb, 99)),
        "ttfb_max_ms": ms(max(hold.ttfb, default=None)),
        "duration_p50_s": percentile(hold.duration, 50),
        "duration_p99_s": percentile(hold.duration, 99),
        "duration_max_s": max(hold.duration, default=None),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_kib": usage.ru_maxrss,
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


async def lag_probe(port: int, path: str, stop: asyncio.Event, samples: list[float], errors: list[str]) -> None:
    """GET `path` every LAG_EVERY s on one keep-alive connection (reopened after a failure), timing each."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    due = time.monotonic()
    while not stop.is_set():
        try:
            if reader is None or writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            began = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.lower().split(b"\r\n")
            length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), None)
            if length is not None:
                await asyncio.wait_for(reader.readexactly(length), 10)
            else:  # chunked (the bare pass-through relays its probe)
                await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 10)
            samples.append(time.perf_counter() - began)
            if head[9:12] != b"200":
                errors.append(f"status {head[9:12].decode(errors='replace')}")
            if b"connection: close" in lines:
                writer.close()
                reader = writer = None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            errors.append(type(exc).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
        due += LAG_EVERY
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            due = time.monotonic()  # a late probe is not followed by a burst of catching up
    if writer is not None:
        writer.close()


def main() -> int:
    import uvloop

    result = uvloop.run(hold_streams(json.loads(sys.argv[1])))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
