"""Where `open_streams_why.py`'s server spends its CPU: py-spy through a hold, its stacks by component and by step.

The steps are the parts of an open stream (inclusive: a sample counts for each step its stack is in); the
components are profile_wattfare's (self time). µs per token come from the CPU the process really used (/proc).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from open_streams_measure import Progress

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
