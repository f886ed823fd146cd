"""Wattfare on `pg_scale.py`'s database: the app provisioned, `wattfare serve` with /metrics, one chat request."""

from __future__ import annotations

from pathlib import Path

import httpx
import standin
from load import request_body
from processes import Server, free_port
from servers import RETRY, probe_json, wattfare_env

METRICS_TOKEN = "bench-pg-metrics"
CAP_USD = "1000000"  # test users auto-connect with this cap: the benchmark never reaches it
CHAT_PATH = "/api/v1/chat/completions"


def provision(url: str) -> tuple[str, str]:
    """Migrate the database and create an app with test keys; (its id, its test secret key)."""
    from tests.support.wattfare_server import provision as provision_app

    made = provision_app(url, "Benchmark app", CAP_USD, modes=("test",))
    return made.app.id, made.secret_keys["test"]


def start_wattfare_pg(tmp: Path, name: str, upstream: str, url: str, secret: str, workers: int) -> tuple[Server, int]:
    """`wattfare serve` as `servers.start_wattfare` runs it, but on `url` (already provisioned) and with /metrics."""
    from tests.support.wattfare_server import serve_command

    port = free_port()
    env = wattfare_env(url, port, upstream, CAP_USD, WATTFARE_METRICS_TOKEN=METRICS_TOKEN)
    server = Server(name, serve_command(port, workers), tmp / f"{name}.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": "bench-user"}
    server.wait_ready(lambda: probe_json(port, CHAT_PATH, headers), 60, RETRY)
    return server, port


def store_calls(port: int) -> dict[str, float]:
    """`wattfare_store_duration_seconds` count and sum by operation, from the server's /metrics."""
    text = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("wattfare_store_duration_seconds_") and not line.startswith(
            "wattfare_store_duration_seconds_bucket"
        ):
            name, value = line.rsplit(" ", 1)
            what = name.removeprefix("wattfare_store_duration_seconds_")  # count{operation="read"}
            found[what.replace('{operation="', ":").rstrip('"}')] = float(value)
    return found


def chat(client: httpx.Client, port: int, secret: str, user: str, *, stream: bool) -> None:
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": user, "content-type": "application/json"}
    if stream:
        headers["accept"] = "text/event-stream"
    response = client.post(
        f"http://127.0.0.1:{port}{CHAT_PATH}", content=request_body(standin.MODEL, stream=stream), headers=headers
    )
    if response.status_code != 200:
        raise RuntimeError(f"request for {user} answered {response.status_code}: {response.text[:300]}")
