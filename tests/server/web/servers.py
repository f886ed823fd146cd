"""Real processes for the browser tests: Wattfare (`wattfare serve`), the demo app, and helpers on their state."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.wattfare_server import ServerProcess, free_port, wattfare_process
from wattfare.server.access.session_tokens import SessionClaims, mint_session
from wattfare.server.store import open_store
from wattfare.server.store.records import Mode

REPO = Path(__file__).resolve().parents[3]
SIGNING_SECRET = "web-tests-signing-secret-0123456789"
PASSWORD = "correct horse battery staple"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_", "DEMO_"))}
    return env | extra


def set_origins(db: Path, app_id: str, origins: list[str]) -> None:
    async def run() -> None:
        store = open_store(f"sqlite:///{db}")
        try:
            await store.set_app_origins(app_id, origins)
        finally:
            await store.close()

    asyncio.run(run())


@contextmanager
def wattfare_server(tmp_path: Path, origins: list[str], env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """`wattfare serve` with a known signing secret (so tests can forge expired tokens), its app allowing `origins`."""
    with wattfare_process(tmp_path, env={"WATTFARE_SIGNING_SECRET": SIGNING_SECRET, **(env or {})}) as server:
        set_origins(server.db_path, server.app.app.id, origins)
        yield server


@contextmanager
def demo_process(server: ServerProcess, mode: Mode, port: int, log_dir: Path, **settings: str) -> Iterator[str]:
    """The demo app (examples/demo_app) as a real uvicorn process on `port`, using `mode`'s keys.

    `settings` are more of its environment variables (`DEMO_MODEL`, `DEMO_SUGGESTED_CAP_USD`).
    """
    env = clean_env(
        WATTFARE_SECRET_KEY=server.app.secret_keys[mode],
        WATTFARE_PUBLISHABLE_KEY=server.app.publishable_keys[mode],
        WATTFARE_BASE_URL=server.base_url,
        PYTHONPATH=str(REPO),
        **settings,
    )
    command = [sys.executable, "-m", "uvicorn", "examples.demo_app.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log_path = log_dir / f"demo-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the demo app exited:\n{log_path.read_text()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo app did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def demo_port() -> tuple[int, str]:
    port = free_port()
    return port, f"http://127.0.0.1:{port}"


def wattfare_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(WATTFARE_DATABASE_URL=f"sqlite:///{server.db_path}")
    command = [sys.executable, "-m", "wattfare.server.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def session_token(server: ServerProcess, app_user_id: str, mode: Mode = "live", monthly_usd: float = 5) -> str:
    response = httpx.post(
        f"{server.api_url}/sessions",
        json={"appUserId": app_user_id, "requestLimit": {"monthlyUsd": monthly_usd}},
        headers={"Authorization": f"Bearer {server.app.secret_keys[mode]}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def expired_token(app_id: str, app_user_id: str, mode: Mode = "live") -> str:
    """A correctly signed token whose 10 minutes ran out a minute ago."""
    expired = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    return mint_session(SIGNING_SECRET.encode(), SessionClaims(app_id, app_user_id, mode, None, expired, "jti-expired"))


def status_of(server: ServerProcess, app_user_id: str, mode: Mode = "live") -> dict[str, object]:
    response = httpx.get(
        f"{server.api_url}/status",
        params={"appUserId": app_user_id},
        headers={"Authorization": f"Bearer {server.app.secret_keys[mode]}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def complete(
    server: ServerProcess, app_user_id: str, mode: Mode = "live", model: str = "openai/gpt-4o-mini"
) -> httpx.Response:
    return httpx.post(
        f"{server.api_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        headers={"Authorization": f"Bearer {server.app.secret_keys[mode]}", "Wattfare-User": app_user_id},
        timeout=30,
    )


def rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the server's SQLite file through a separate connection."""
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()
