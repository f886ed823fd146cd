"""Several `wattfare serve` processes on ONE PostgreSQL database, as a load balancer would front them.

The shared harness (`tests.support.wattfare_server`) provisions an app every time it starts a server;
here the app is provisioned once and any number of instances are started on the same database, together,
and stopped by their PIDs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.wattfare_server import free_port
from wattfare.metering import usd_to_nanos
from wattfare.server.access.app_registration import ProvisionedApp
from wattfare.server.access.app_registration import create_app as provision_app
from wattfare.server.store import open_store

STARTUP_SECONDS = 45  # generous: the machine is shared, and several instances start at once
# Clients drop idle connections before the server (uvicorn: 5 s) does, so no request is ever sent on a
# connection the server is closing at that very moment (a `ReadError` that would be the client's fault).
CLIENT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=2.0)


async def provision_async(database_url: str, name: str = "Scale app", test_cap_usd: str = "10") -> ProvisionedApp:
    """Migrate the database and create an app with its keys."""
    store = open_store(database_url)
    try:
        await store.upgrade()
        return await provision_app(store, name, usd_to_nanos(test_cap_usd))
    finally:
        await store.close()


def provision(database_url: str) -> ProvisionedApp:
    """`provision_async`, from synchronous code."""
    return asyncio.run(provision_async(database_url))


@dataclass
class Instance:
    """One running `wattfare serve` process."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v1"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_hard(self) -> None:
        """`kill -9`: the process dies holding whatever it held."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; only this process, by its PID."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def launch(name: str, log_dir: Path, env: dict[str, str], port: int | None = None) -> Instance:
    """Start one `wattfare serve` process (not waiting for it); `env` must name WATTFARE_DATABASE_URL."""
    port = port or free_port()
    log_path = log_dir / f"{name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    environment |= {"WATTFARE_PUBLIC_URL": f"http://127.0.0.1:{port}", "WATTFARE_LOG_LEVEL": "warning"} | env
    command = [sys.executable, "-m", "wattfare.server.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    # Appending: a restarted instance keeps the log of its previous life.
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    return Instance(name, port, log_path, process)


def wait_healthy(instances: list[Instance]) -> None:
    """Wait until every instance answers `/healthz`, or fail with its log."""
    deadline = time.monotonic() + STARTUP_SECONDS
    pending = list(instances)
    while pending:
        instance = pending[0]
        if instance.process.poll() is not None:
            raise RuntimeError(f"{instance.name} exited early:\n{instance.log_text()}")
        try:
            if httpx.get(f"{instance.base_url}/healthz", timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{instance.name} did not start:\n{instance.log_text()}")
        time.sleep(0.1)


@contextmanager
def running(instances: list[Instance]) -> Iterator[list[Instance]]:
    """Wait for `instances` to be healthy; stop each of them afterwards (also when they never came up)."""
    with ExitStack() as stack:
        for instance in instances:
            stack.callback(instance.stop)
        wait_healthy(instances)
        yield instances


@dataclass
class Deployment:
    """N instances on one database, and the app provisioned in it (its keys work on every instance)."""

    database_url: str
    app: ProvisionedApp
    instances: list[Instance]

    @property
    def secret(self) -> str:
        return self.app.secret_keys["test"]

    def client(self, index: int, **options: object) -> httpx.AsyncClient:
        """An API client of instance `index` (modulo the count), authenticated with the app's test key."""
        instance = self.instances[index % len(self.instances)]
        headers = {"Authorization": f"Bearer {self.secret}"}
        options = {"limits": CLIENT_LIMITS} | options
        return httpx.AsyncClient(base_url=instance.api_url, headers=headers, **options)  # type: ignore[arg-type]

    def logs(self) -> str:
        return "".join(instance.log_text() for instance in self.instances)


@contextmanager
def deployment_on(database_url: str, log_dir: Path, env: dict[str, str], count: int) -> Iterator[Deployment]:
    """Provision an app once, then start `count` instances on `database_url` together."""
    app = provision(database_url)
    env = env | {"WATTFARE_DATABASE_URL": database_url}
    instances = [launch(f"instance-{index}", log_dir, env) for index in range(count)]
    with running(instances):
        yield Deployment(database_url, app, instances)
