"""`wattfare dev` and `wattfare serve`: check the port and the database first, then run the server.

`dev` binds its port before it mints or prints any key, and hands that very socket to uvicorn, so a busy port
is one line of error and no key is shown for a server that never ran.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

import click
import uvicorn

from wattfare.server.access.app_registration import register_app
from wattfare.server.access.keys import hash_key
from wattfare.server.cli.database import load_settings, shown_url, with_store
from wattfare.server.cli.output import heading, show_key
from wattfare.server.malformed_http import HTTP_PROTOCOL
from wattfare.server.settings import Settings
from wattfare.server.store import Store

APP_FACTORY = "wattfare.server.app:create_served_app"
DEV_DIR = Path(".wattfare")
DEV_ENV = DEV_DIR / "dev.env"


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (as uvicorn would bind it), or a one-line error when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use: stop what runs there, or pick another with --port"
            ) from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[name.strip()] = value.strip()
    return values


async def _dev_keys(store: Store, settings: Settings, base_url: str) -> dict[str, str]:
    """The dev app's keys: reused from .wattfare/dev.env while they still work, else minted once."""
    known = _read_env_file(DEV_ENV)
    secret = known.get("WATTFARE_SECRET_KEY", "")
    if secret and await store.find_secret_key(hash_key(secret)) is not None:
        return known | {"WATTFARE_BASE_URL": base_url}
    made = await register_app(store, "Dev app", settings.default_test_cap, modes=("test",))
    return {
        "WATTFARE_BASE_URL": base_url,
        "WATTFARE_SECRET_KEY": made.secret_keys["test"],
        "WATTFARE_PUBLISHABLE_KEY": made.publishable_keys["test"],
        "WATTFARE_APP_ID": made.app.id,
    }


def _banner(settings: Settings, base_url: str, keys: dict[str, str]) -> None:
    upstream = "sandbox (offline, free)" if settings.test_upstream == "sandbox" else settings.upstream_url
    heading("Wattfare dev server (test keys auto-approve users)")
    click.echo(f"API       {base_url}/api/v1")
    click.echo(f"Upstream  {upstream}")
    click.echo(f"Database  {shown_url(settings.database_url)}")
    click.echo(f"Env file  {DEV_ENV}  (source it: set -a; . {DEV_ENV}; set +a)")
    show_key("Secret key (server only)", keys["WATTFARE_SECRET_KEY"])
    show_key("Publishable key (browser)", keys["WATTFARE_PUBLISHABLE_KEY"])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(1, 65535))
def dev(host: str, port: int) -> None:
    """Run Wattfare locally: SQLite, a test app with its keys, sandbox models unless a provider key is set."""
    base_url = f"http://{host}:{port}"
    os.environ.setdefault("WATTFARE_PUBLIC_URL", base_url)
    if os.environ.get("WATTFARE_UPSTREAM_KEY") or os.environ.get("OPENROUTER_API_KEY"):
        # The dev app has test keys only: with a provider key at hand, serve them real models.
        os.environ.setdefault("WATTFARE_TEST_UPSTREAM", "live")
    settings = load_settings()
    with listen(host, port) as listener:
        keys = with_store(settings, lambda store: _dev_keys(store, settings, base_url))
        DEV_DIR.mkdir(exist_ok=True)
        DEV_ENV.write_text("".join(f"{k}={v}\n" for k, v in keys.items()))
        DEV_ENV.chmod(0o600)
        _banner(settings, base_url, keys)
        server = uvicorn.Server(uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, log_level="info"))
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down for
            server.run(sockets=[listener])
    if not server.started:
        raise click.ClickException("the server did not start (see its log above)")


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server binds all interfaces
@click.option("--port", default=8787, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run Wattfare with production settings from WATTFARE_* environment variables."""

    async def migrate(store: Store) -> None:
        return None  # `with_store` migrated it: reaching it was the point

    with_store(load_settings(), migrate)
    # Checked, then released for uvicorn to bind (in its parent process when there are several workers).
    listen(host, port).close()
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=os.environ.get("WATTFARE_LOG_LEVEL", "info"),
        proxy_headers=True,
        server_header=False,
        # Named, not left to uvicorn's fallback: the pure-Python loop and parser cost several times more CPU.
        loop="uvloop",
        # httptools, with what its parser refuses answered in the error envelope rather than plain text.
        http=HTTP_PROTOCOL,
        # Each access-log line costs about as much as a metering write; opt in with WATTFARE_ACCESS_LOG=1.
        access_log=os.environ.get("WATTFARE_ACCESS_LOG") == "1",
    )
