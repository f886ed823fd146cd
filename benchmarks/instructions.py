"""Instructions per proxied request (valgrind's callgrind), non-streamed and streamed, for several git revisions.

On a machine whose speed drifts by ±30% between minutes (and that others share), a change worth 5% cannot be seen
in wall-clock or CPU-time runs; callgrind counts the same instructions for the same code whatever else runs. Each
revision is checked out into a temporary worktree (its sources first on PYTHONPATH, as `ab.py` does) and serves N
sequential chat completions to an in-process app over httpx's ASGI transport (SQLite file, the sandbox upstream,
request log on as shipped, to /dev/null), under callgrind, at two values of N: the difference divided by the
difference of N is the instructions per request, start-up cancelled out. What it cannot see: the ASGI server and
the socket work (in-process transport), and how code behaves under concurrency (group commit groups nothing here).

Run: `.venv/bin/python benchmarks/instructions.py 8977a71 HEAD` (about 2 minutes per revision; needs valgrind).
Writes benchmarks/results/instructions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ab import worktree

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
SMALL, LARGE = 60, 240
WARM_UP = 20
KINDS = ("json", "stream")


async def serve(requests: int, kind: str) -> None:
    """Serve `requests` chat completions of `kind` in-process, after a warm-up (what callgrind counts)."""
    import httpx
    from tests.support.wattfare_server import provision_async

    from wattfare.server.app import create_app
    from wattfare.server.observability.request_log import configure_logging
    from wattfare.server.settings import Settings

    db = Path(tempfile.mkdtemp()) / "instructions.db"
    app_keys = await provision_async(db, test_cap_usd="1000000")
    app = create_app(Settings.from_env({}, database_url=f"sqlite:///{db}"))
    configure_logging("json", "info", open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
    services = app.state.services
    await services.start()
    gc.collect()  # as `wattfare serve` runs it (`app.tuned_for_serving`)
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    headers = {"Authorization": f"Bearer {app_keys.secret_keys['test']}", "Wattfare-User": "instructions-user"}
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 20,
        "stream": kind == "stream",
    }
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cost") as client:
            for _ in range(WARM_UP + requests):
                answer = await client.post("/api/v1/chat/completions", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
                assert kind == "json" or b"[DONE]" in answer.content, answer.content[-300:]
    finally:
        await services.stop()


def _instructions(sources: Path, requests: int, kind: str, out: Path) -> int:
    target = out / f"callgrind.{kind}.{requests}"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={target}"]
    subprocess.run(
        [*valgrind, sys.executable, __file__, "serve", str(requests), kind],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(sources), str(ROOT), str(HERE)])},
    )
    summary = re.search(r"^summary: (\d+)", target.read_text(errors="replace"), re.MULTILINE)
    assert summary is not None
    return int(summary.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions ('.' = the working tree)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-instructions-"))
    results: dict[str, dict[str, float]] = {}
    try:
        for revision in args.revisions:
            sources = worktree(revision, tmp)
            out = tmp / f"out-{len(results)}"
            out.mkdir()
            for kind in KINDS:
                small, large = (_instructions(sources, n, kind, out) for n in (SMALL, LARGE))
                results.setdefault(revision, {})[kind] = (large - small) / (LARGE - SMALL)
                per_request = results[revision][kind] / 1000
                print(f"{revision:12} {kind:6} {per_request:8.1f}k instructions per request", flush=True)
    finally:
        for tree in tmp.glob("tree-*"):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    (HERE / "results" / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n| revision | json (k instructions / request) | stream (k instructions / request) |")
    print("|---|---|---|")
    for revision, row in results.items():
        print(f"| {revision} | {row['json'] / 1000:.0f}k | {row['stream'] / 1000:.0f}k |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        sys.exit(main())
