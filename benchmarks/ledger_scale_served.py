"""One `wattfare serve` over one of `ledger_scale.py`'s databases: the app provisioned in it, the server started."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from ledger_inspect import Database
from processes import Server, free_port
from servers import RETRY, wattfare_env

CAP_USD = "1000000"  # the default test cap: wrk's users never reach it


@dataclass
class Served:
    """One `wattfare serve` over one database, with what the benchmark needs to call it."""

    label: str
    server: Server
    port: int
    secret: str
    database: Database

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def provision_app(url: str) -> tuple[str, str]:
    """Migrate and register the benchmark app (as `servers.provision_wattfare`); its id and test secret key."""
    from tests.support.wattfare_server import provision

    app = provision(url, "Benchmark app", CAP_USD, modes=("test", "live"))
    return app.app.id, app.secret_keys["test"]


def start_server(tmp: Path, label: str, url: str, secret: str, upstream: str, database: Database) -> Served:
    """`wattfare serve` over `url`, as `servers.start_wattfare` starts it (one worker, log level as shipped)."""
    from tests.support.wattfare_server import serve_command

    port = free_port()
    env = wattfare_env(url, port, upstream, CAP_USD)
    server = Server(label, serve_command(port, 1), tmp / f"{label}.log", env=env, cwd=tmp)
    server.start()
    server.wait_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200, 120, RETRY)
    return Served(label, server, port, secret, database)
