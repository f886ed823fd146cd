"""Heap dumps on a signal for `open_streams_why.py`: the server's side (`serve`) and the orchestrator's.

`serve` runs the what-if server (`open_streams.serve_uncapped`) answering SIGUSR2 with a census of live Python
objects and SIGUSR1 with tracemalloc (started, then snapshots); `dump_when_open` sends the signal once the N
streams are in the relay and waits for the file.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import open_streams
from open_streams_measure import Progress


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
        await asyncio.to_thread(wait_for_file, dump)
        return {"open_at_dump": opened, "streaming_at_dump": streaming}

    return during


def wait_for_file(path: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the traced server wrote no {path.name}")
        time.sleep(0.2)
