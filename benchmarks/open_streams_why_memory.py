"""What an open stream keeps alive in `open_streams_why.py`'s server: live objects by type, and heap by site.

From the census dumps (objects by type, idle and with N streams open) and the tracemalloc snapshot (what is alive
of the allocations made since tracing started), per open stream.
"""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any


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
