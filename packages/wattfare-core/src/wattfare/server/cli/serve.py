"""`wattfare dev` and `wattfare serve`: check the port and the database first, then run the server.

`dev` binds its port before it mints or prints any key, and hands that very socket to uvicorn, so a busy port
is one line of error and no key is shown for a server that never ran.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Generator
from pathlib import Path

import click
import uvicorn

from wattfare.server.access.app_registration import register_app
from wattfare.server.access.keys import hash_key
from wattfare.server.cli.database import load_settings, shown_url, with_store
from wattfare.server.cli.output import heading, show_key
from wattfare.server.malformed_http import HTTP_PROTOCOL
from wattfare.server.observability.metrics import MULTIPROC_DIR_VARIABLE
from wattfare.server.observability.request_log import LOG_FORMATS, LOG_LEVELS, LogFormat, logging_config
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


def log_settings() -> tuple[LogFormat, str]:
    """`WATTFARE_LOG_FORMAT` and `WATTFARE_LOG_LEVEL`, checked (one line of error when they are not known)."""
    log_format = os.environ.get("WATTFARE_LOG_FORMAT", "json")
    level = os.environ.get("WATTFARE_LOG_LEVEL", "info").lower()
    if log_format not in LOG_FORMATS:
        raise click.ClickException(f"WATTFARE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    if level not in LOG_LEVELS:
        raise click.ClickException(f"WATTFARE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return log_format, level  # pyright: ignore[reportReturnType]  # checked against LOG_FORMATS above


@contextlib.contextmanager
def shared_metrics(workers: int) -> Generator[None]:
    """Several workers share their metrics through a fresh directory of their own, removed when serving ends.

    prometheus-client reads `PROMETHEUS_MULTIPROC_DIR` when it is first imported, which in each worker process
    comes after this (uvicorn starts them fresh). One worker needs none: its metrics live in its memory. A
    directory the operator named is theirs: used, never removed.
    """
    if workers == 1 or os.environ.get(MULTIPROC_DIR_VARIABLE):
        yield
        return
    shared = tempfile.mkdtemp(prefix="wattfare-metrics-")
    os.environ[MULTIPROC_DIR_VARIABLE] = shared
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
        shutil.rmtree(shared, ignore_errors=True)


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
    os.environ.setdefault("WATTFARE_LOG_FORMAT", "console")  # for the person at the terminal
    log_format, level = log_settings()
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
        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            log_level=level,
            log_config=logging_config(log_format, level),
            # Each request is one line of the request log already.
            access_log=False,
        )
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut down for
            server.run(sockets=[listener])
    if not server.started:
        raise click.ClickException("the server did not start (see its log above)")


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server binds all interfaces
@click.option("--port", default=8787, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option(
    "--backlog",
    default=8192,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Connections the kernel queues before they are accepted (at most net.core.somaxconn).",
)
def serve(host: str, port: int, workers: int, backlog: int) -> None:
    """Run Wattfare with production settings from WATTFARE_* environment variables."""

    async def migrate(store: Store) -> None:
        return None  # `with_store` migrated it: reaching it was the point

    log_format, level = log_settings()
    with_store(load_settings(), migrate)
    # Checked, then released for uvicorn to bind (in its parent process when there are several workers).
    listen(host, port).close()
    with shared_metrics(workers):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # uvicorn's 2,048 overflowed (26k accept-queue overflows in /proc/net/netstat) while 5,000 streams opened
            # at once (benchmarks/open_streams.py): the kernel still caps it at net.core.somaxconn.
            backlog=backlog,
            log_level=level,
            # uvicorn's own lines and the server's loggers in the request log's format (README, "Operating Wattfare").
            log_config=logging_config(log_format, level),
            proxy_headers=True,
            server_header=False,
            # Named, not left to uvicorn's fallback: the pure-Python loop and parser cost several times more CPU.
            loop="uvloop",
            # httptools, with what its parser refuses answered in the error envelope rather than plain text.
            http=HTTP_PROTOCOL,
            # The request log has a line per request; uvicorn's access log would repeat it, so it is only for the
            # console format, on request (WATTFARE_ACCESS_LOG=1): each line costs about as much as a metering write.
            access_log=log_format == "console" and os.environ.get("WATTFARE_ACCESS_LOG") == "1",
        )
