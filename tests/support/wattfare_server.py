"""Running Wattfare for tests, written once: in this process over ASGI, or as real `wattfare serve` processes.

How a test's Wattfare is provisioned, started, waited for and stopped is decided here and nowhere else:

- `served` / `in_process`: the app in this process behind httpx's ASGI transport (no socket, no process);
- `wattfare_process`: one `wattfare serve` process over a database of its own, its app provisioned;
- `deployment_on`: several processes on one database, as a load balancer would front them (the scale tests),
  built from `launch` and `running`, which tests also call to restart an instance or start one by hand.

Processes listen on a free loopback port, log to a file the test can read, and are stopped by their PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
from starlette.applications import Starlette

from wattfare.metering import usd_to_nanos
from wattfare.server.access.app_registration import ProvisionedApp, register_app
from wattfare.server.app import create_app
from wattfare.server.billing.meter import Meter
from wattfare.server.instants import utc_now
from wattfare.server.services import Services
from wattfare.server.settings import Settings
from wattfare.server.store import open_store
from wattfare.server.store.records import Mode

# Tests that opt in (the `each_store` fixture of tests/server/conftest.py) run their in-process servers on
# this database instead of a SQLite file under tmp_path.
database_override: str | None = None

STARTUP_SECONDS = 45  # generous: the machine is shared, and several processes may start at once
# Clients drop idle connections before the server (uvicorn: 5 s) does, so no request is ever sent on a
# connection the server is closing at that very moment (a `ReadError` that would be the client's fault).
CLIENT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=2.0)

AnyInstance = TypeVar("AnyInstance", bound="Instance")


def free_port() -> int:
    """A loopback port nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_for(db: Path | str) -> str:
    """A database URL: a path means a SQLite file, a string is taken as a URL."""
    return f"sqlite:///{db}" if isinstance(db, Path) else db


async def provision_async(
    db: Path | str, name: str = "Test app", test_cap_usd: str = "10", modes: tuple[Mode, ...] = ("test", "live")
) -> ProvisionedApp:
    """Migrate the database (a SQLite file path or a URL) and create an app with keys for `modes`.

    Its test users get `test_cap_usd` a month.
    """
    store = open_store(database_url_for(db))
    try:
        await store.upgrade()
        return await register_app(store, name, usd_to_nanos(test_cap_usd), modes=modes)
    finally:
        await store.close()


def provision(
    db: Path | str, name: str = "Test app", test_cap_usd: str = "10", modes: tuple[Mode, ...] = ("test", "live")
) -> ProvisionedApp:
    """`provision_async`, from synchronous code."""
    return asyncio.run(provision_async(db, name, test_cap_usd, modes))


# ---------------------------------------------------------------------------------------- in-process


@dataclass
class Served:
    """The app running in this process: its provisioned app, settings, ASGI app and started services."""

    app: ProvisionedApp
    settings: Settings
    asgi: Starlette
    services: Services


@asynccontextmanager
async def served(
    database_url: str, clock: Callable[[], datetime] = utc_now, **settings: object
) -> AsyncIterator[Served]:
    """Provision `database_url`, then run the app over it in this process; `settings` override `Settings` fields."""
    async with served_with_meter(database_url, clock, None, settings) as server:
        yield server


@asynccontextmanager
async def served_with_meter(
    database_url: str,
    clock: Callable[[], datetime],
    meter: Callable[[Services], Meter] | None,
    settings: Mapping[str, object],
) -> AsyncIterator[Served]:
    """`served`, its meter built by `meter` from the app's parts (a test double: `create_app`'s parameter)."""
    # In a thread of its own: provisioning runs its own event loop.
    provisioned = await asyncio.to_thread(provision, database_url)
    config = Settings.from_env({}, database_url=database_url, **settings)
    app = create_app(config, clock=clock, meter=meter)
    services: Services = app.state.services
    await services.start()
    try:
        yield Served(provisioned, config, app, services)
    finally:
        await services.stop()


@dataclass
class InProcess:
    """The app served through httpx's ASGI transport, with a client on its API."""

    client: httpx.AsyncClient
    app: ProvisionedApp
    settings: Settings

    @property
    def secret(self) -> str:
        """The app's test secret key."""
        return self.app.secret_keys["test"]

    def auth(self, key: str | None = None, user: str | None = "u1") -> dict[str, str]:
        """Headers authenticating with `key` (the test secret by default) as end user `user` (none if None)."""
        headers = {"Authorization": f"Bearer {key or self.secret}"}
        if user is not None:
            headers["Wattfare-User"] = user
        return headers


@asynccontextmanager
async def in_process(tmp_path: Path, database_url: str | None = None, **settings: object) -> AsyncIterator[InProcess]:
    """The server in-process over a fresh SQLite file (or `database_url`); `settings` override `Settings` fields."""
    database = database_url or database_override or database_url_for(tmp_path / "wattfare.db")
    async with (
        served(database, utc_now, **settings) as server,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=server.asgi), base_url="http://wattfare.test/api/v1"
        ) as client,
    ):
        yield InProcess(client, server.app, server.settings)


# ---------------------------------------------------------------------------------------- processes


@dataclass
class Instance:
    """One running `wattfare serve` process on 127.0.0.1."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The root of its v1 API."""
        return f"{self.base_url}/api/v1"

    def log_text(self) -> str:
        """Everything the process wrote so far (all its lives, when restarted on the same log)."""
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


@dataclass
class ServerProcess(Instance):
    """An instance over a database of its own, and the app provisioned in it."""

    app: ProvisionedApp
    db_path: Path

    @property
    def secret(self) -> str:
        """The app's test secret key."""
        return self.app.secret_keys["test"]


def serve_environment(port: int, env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the developer's own Wattfare or OpenRouter settings, then `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    environment |= {"WATTFARE_PUBLIC_URL": f"http://127.0.0.1:{port}", "WATTFARE_LOG_LEVEL": "warning"}
    return environment | dict(env)


def serve_command(port: int, workers: int = 1) -> list[str]:
    """The command line of `wattfare serve` on 127.0.0.1:`port`."""
    command = [sys.executable, "-m", "wattfare.server.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--workers", str(workers)]


def launch(name: str, log_dir: Path, env: Mapping[str, str], port: int | None = None, workers: int = 1) -> Instance:
    """Start one `wattfare serve` process (not waiting for it); `env` must name WATTFARE_DATABASE_URL."""
    port = port or free_port()
    log_path = log_dir / f"{name}.log"
    # Appending: an instance restarted under its name keeps the log of its previous life.
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            serve_command(port, workers), stdout=log, stderr=subprocess.STDOUT, env=serve_environment(port, env)
        )
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
def running(instances: list[AnyInstance]) -> Iterator[list[AnyInstance]]:
    """Wait for `instances` to be healthy; stop each of them afterwards (also when they never came up)."""
    with ExitStack() as stack:
        for instance in instances:
            stack.callback(instance.stop)
        wait_healthy(list(instances))
        yield instances


@contextmanager
def wattfare_process(
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    database_url: str | None = None,
    test_cap_usd: str = "10",
) -> Iterator[ServerProcess]:
    """Start `wattfare serve` on a free loopback port over a fresh SQLite file (or `database_url`).

    Its app's test users get `test_cap_usd` a month. The process is stopped by PID afterwards.
    """
    db = tmp_path / "wattfare.db"
    url = database_url or database_url_for(db)
    provisioned = provision(url, test_cap_usd=test_cap_usd)
    # A server started again in the same directory writes a log of its own (`launch` would append).
    (tmp_path / "server.log").unlink(missing_ok=True)
    started = launch("server", tmp_path, {"WATTFARE_DATABASE_URL": url, **(env or {})}, workers=workers)
    server = ServerProcess(started.name, started.port, started.log_path, started.process, provisioned, db)
    with running([server]):
        yield server


@dataclass
class Deployment:
    """N instances on one database, and the app provisioned in it (its keys work on every instance)."""

    database_url: str
    app: ProvisionedApp
    instances: list[Instance]

    @property
    def secret(self) -> str:
        """The app's test secret key."""
        return self.app.secret_keys["test"]

    def client(self, index: int, **options: object) -> httpx.AsyncClient:
        """An API client of instance `index` (modulo the count), authenticated with the app's test key."""
        instance = self.instances[index % len(self.instances)]
        headers = {"Authorization": f"Bearer {self.secret}"}
        options = {"limits": CLIENT_LIMITS} | options
        return httpx.AsyncClient(base_url=instance.api_url, headers=headers, **options)  # type: ignore[arg-type]

    def logs(self) -> str:
        """Every instance's log, one after the other."""
        return "".join(instance.log_text() for instance in self.instances)


@contextmanager
def deployment_on(database_url: str, log_dir: Path, env: Mapping[str, str], count: int) -> Iterator[Deployment]:
    """Provision an app once, then start `count` instances on `database_url` together."""
    app = provision(database_url)
    env = {**env, "WATTFARE_DATABASE_URL": database_url}
    with running([launch(f"instance-{index}", log_dir, env) for index in range(count)]) as instances:
        yield Deployment(database_url, app, instances)
