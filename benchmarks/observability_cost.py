"""What the metrics and the request log cost per proxied request, counted in instructions (valgrind's callgrind).

Wall-clock on a shared machine drifts by more than the effect; callgrind counts the same instructions for the same
code whatever else runs. Each variant serves N sequential chat completions (sandbox upstream, SQLite file) to an
in-process app over httpx's ASGI transport, under callgrind, at two values of N; the difference divided by the
difference of N is the instructions per request, start-up cancelled out.

- `off`: the observability middleware, the store's timing and the in-flight gauge removed, every other hook a
  no-op (the server as it was before, but for a few no-op calls);
- `metrics`: as served, the request log not configured (no line written);
- `metrics+log`: as served, one JSON line per request written to /dev/null.

Run: `.venv/bin/python benchmarks/observability_cost.py` (about 10 minutes; needs valgrind). One variant:
`.venv/bin/python benchmarks/observability_cost.py serve N VARIANT` (what the driver runs under callgrind).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("off", "metrics", "metrics+log")
SMALL, LARGE = 100, 400
WARM_UP = 30


def _silence_observability() -> None:
    """Every hook of the observability room a no-op: the server as it was before it."""
    from wattfare.server.observability import metrics, request_log

    for module, names in (
        (metrics, ("request_done", "reserved", "settled", "upstream_called", "upstream_answered", "upstream_failed")),
        (metrics, ("store_unavailable", "rate_limited")),
        (request_log, ("note_caller", "note_metered", "note_code")),
    ):
        for name in names:
            setattr(module, name, lambda *args, **kwargs: None)


async def serve(requests: int, variant: str) -> None:
    import httpx
    from tests.support.wattfare_server import provision_async

    from wattfare.server.app import create_app
    from wattfare.server.observability.middleware import ObservedRequests
    from wattfare.server.observability.request_log import configure_logging
    from wattfare.server.settings import Settings

    db = Path(tempfile.mkdtemp()) / "cost.db"
    app_keys = await provision_async(db, test_cap_usd="1000000")
    app = create_app(Settings.from_env({}, database_url=f"sqlite:///{db}"))
    if variant == "off":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not ObservedRequests]
        _silence_observability()
        services = app.state.services
        services.store._engine = services.store._engine._engine  # the store's calls untimed
        services.meter._live = set()  # no in-flight gauge
    if variant == "metrics+log":
        configure_logging("json", "info", open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
    services = app.state.services
    await services.start()
    # As `wattfare serve` runs it (`app.tuned_for_serving`): start-up objects out of every collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    headers = {"Authorization": f"Bearer {app_keys.secret_keys['test']}", "Wattfare-User": "cost-user"}
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cost") as client:
            for _ in range(WARM_UP + requests):
                answer = await client.post("/api/v1/chat/completions", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
    finally:
        await services.stop()


def _instructions(requests: int, variant: str, out: Path) -> int:
    target = out / f"callgrind.{variant.replace('+', '-')}.{requests}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={target}",
            sys.executable,
            __file__,
            "serve",
            str(requests),
            variant,
        ],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(ROOT)]).strip(os.pathsep),
        },
    )
    summary = re.search(r"^summary: (\d+)", target.read_text(errors="replace"), re.MULTILINE)
    assert summary is not None
    return int(summary.group(1))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        per_request: dict[str, float] = {}
        for variant in VARIANTS:
            small, large = (_instructions(n, variant, out) for n in (SMALL, LARGE))
            per_request[variant] = (large - small) / (LARGE - SMALL)
            print(f"{variant:12} {per_request[variant] / 1000:8.1f}k instructions per request", flush=True)
    base = per_request["off"]
    for variant in VARIANTS[1:]:
        added = per_request[variant] - base
        print(f"{variant:12} adds {added / 1000:.1f}k instructions per request ({100 * added / base:+.1f}%)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        main()
