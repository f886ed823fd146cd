"""Running Wattfare for tests: in-process (ASGI) or as a real `wattfare serve` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from wattfare.metering import usd_to_nanos
from wattfare.server.access.app_registration import ProvisionedApp
from wattfare.server.access.app_registration import create_app as provision_app
from wattfare.server.app import create_app
from wattfare.server.settings import Settings
from wattfare.server.store import open_store

# Tests that opt in (the `each_store` fixture of tests/server/conftest.py) run their in-process servers on
# this database instead of a SQLite file under tmp_path.
database_override: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_for(db: Path | str) -> str:
    """A database URL: a path means a SQLite file, a string is taken as a URL."""
    return f"sqlite:///{db}" if isinstance(db, Path) else db


def provision(db: Path | str, name: str = "Test app", test_cap_usd: str = "10") -> ProvisionedApp:
    """Create an app with test and live keys in the database (a SQLite file path or a URL), migrating it first."""

    async def run() -> ProvisionedApp:
        store = open_store(database_url_for(db))
        try:
            await store.upgrade()
            return await provision_app(store, name, usd_to_nanos(test_cap_usd))
        finally:
            await store.close()

    return asyncio.run(run())


@dataclass
class InProcess:
    """The app served through httpx's ASGI transport."""

    client: httpx.AsyncClient
    app: ProvisionedApp
    settings: Settings

    @property
    def secret(self) -> str:
        return self.app.secret_keys["test"]

    def auth(self, key: str | None = None, user: str | None = "u1") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.secret}"}
        if user is not None:
            headers["Wattfare-User"] = user
        return headers


@asynccontextmanager
async def in_process(tmp_path: Path, database_url: str | None = None, **settings: object) -> AsyncIterator[InProcess]:
    """The server in-process over a fresh SQLite file (or `database_url`); `settings` override `Settings` fields."""
    db: Path | str = database_url or database_override or tmp_path / "wattfare.db"
    provisioned = await asyncio.to_thread(provision, db)
    config = Settings.from_env({}, database_url=database_url_for(db), **settings)
    app = create_app(config)
    services = app.state.services
    await services.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://wattfare.test/api/v1"
        ) as client:
            yield InProcess(client, provisioned, config)
    finally:
        await services.stop()


@dataclass
class ServerProcess:
    """A real `wattfare serve` process."""

    base_url: str
    api_url: str
    app: ProvisionedApp
    db_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def secret(self) -> str:
        return self.app.secret_keys["test"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def wattfare_process(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    workers: int = 1,
    database_url: str | None = None,
    test_cap_usd: str = "10",
) -> Iterator[ServerProcess]:
    """Start `wattfare serve` on a free loopback port over a fresh SQLite file (or `database_url`).

    Its app's test users get `test_cap_usd` a month. The process is stopped by PID afterwards.
    """
    db = tmp_path / "wattfare.db"
    provisioned = provision(database_url or db, test_cap_usd=test_cap_usd)
    port = free_port()
    log_path = tmp_path / "server.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    environment |= {
        "WATTFARE_DATABASE_URL": database_url or f"sqlite:///{db}",
        "WATTFARE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WATTFARE_LOG_LEVEL": "warning",
    }
    environment |= env or {}
    command = [sys.executable, "-m", "wattfare.server.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"wattfare serve exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"wattfare serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield ServerProcess(base_url, f"{base_url}/api/v1", provisioned, db, log_path, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
