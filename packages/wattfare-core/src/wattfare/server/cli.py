"""The `wattfare` command: run the server, create apps, migrate the database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from wattfare.metering import nanos_to_usd, usd_to_nanos
from wattfare.server.keys import hash_key
from wattfare.server.members import normalize_email
from wattfare.server.origins import OriginError, parse_origins
from wattfare.server.provisioning import create_app
from wattfare.server.services import utc_now
from wattfare.server.settings import Settings
from wattfare.server.store import open_store
from wattfare.server.store.account_records import CreditBalance

console = Console()
DEV_DIR = Path(".wattfare")
DEV_ENV = DEV_DIR / "dev.env"


@click.group()
@click.version_option(package_name="wattfare-core")
def main() -> None:
    """Wattfare: your users pay for your app's AI inference."""


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[name.strip()] = value.strip()
    return values


async def _dev_keys(settings: Settings, base_url: str) -> dict[str, str]:
    """The dev app's keys: reused from .wattfare/dev.env while they still work, else minted once."""
    store = open_store(settings.database_url)
    try:
        await store.upgrade()
        known = _read_env_file(DEV_ENV)
        secret = known.get("WATTFARE_SECRET_KEY", "")
        if secret and await store.find_secret_key(hash_key(secret)) is not None:
            return known | {"WATTFARE_BASE_URL": base_url}
        made = await create_app(store, "Dev app", settings.default_test_cap, modes=("test",))
        return {
            "WATTFARE_BASE_URL": base_url,
            "WATTFARE_SECRET_KEY": made.secret_keys["test"],
            "WATTFARE_PUBLISHABLE_KEY": made.publishable_keys["test"],
            "WATTFARE_APP_ID": made.app.id,
        }
    finally:
        await store.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
def dev(host: str, port: int) -> None:
    """Run Wattfare locally: SQLite, a test app with its keys, sandbox models unless a provider key is set."""
    base_url = f"http://{host}:{port}"
    os.environ.setdefault("WATTFARE_PUBLIC_URL", base_url)
    if os.environ.get("WATTFARE_UPSTREAM_KEY") or os.environ.get("OPENROUTER_API_KEY"):
        # The dev app has test keys only: with a provider key at hand, serve them real models.
        os.environ.setdefault("WATTFARE_TEST_UPSTREAM", "live")
    settings = Settings.from_env()
    keys = asyncio.run(_dev_keys(settings, base_url))
    DEV_DIR.mkdir(exist_ok=True)
    DEV_ENV.write_text("".join(f"{k}={v}\n" for k, v in keys.items()))
    DEV_ENV.chmod(0o600)
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]API[/]", f"{base_url}/api/v1")
    table.add_row("[bold]Secret key[/]", keys["WATTFARE_SECRET_KEY"])
    table.add_row("[bold]Publishable key[/]", keys["WATTFARE_PUBLISHABLE_KEY"])
    table.add_row(
        "[bold]Upstream[/]", "sandbox (offline, free)" if settings.test_upstream == "sandbox" else settings.upstream_url
    )
    table.add_row("[bold]Database[/]", settings.database_url)
    table.add_row("[bold]Env file[/]", f"{DEV_ENV}  (source it: set -a; . {DEV_ENV}; set +a)")
    console.print(Panel(table, title="[bold green]Wattfare dev server[/]", subtitle="test keys auto-approve users"))
    uvicorn.run("wattfare.server.app:create_served_app", factory=True, host=host, port=port, log_level="info")


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server binds all interfaces
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run Wattfare with production settings from WATTFARE_* environment variables."""
    uvicorn.run(
        "wattfare.server.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=os.environ.get("WATTFARE_LOG_LEVEL", "info"),
        proxy_headers=True,
        server_header=False,
        # Named, not left to uvicorn's fallback: the pure-Python loop and parser cost several times more CPU.
        loop="uvloop",
        http="httptools",
        # Each access-log line costs about as much as a metering write; opt in with WATTFARE_ACCESS_LOG=1.
        access_log=os.environ.get("WATTFARE_ACCESS_LOG") == "1",
    )


@main.group()
def apps() -> None:
    """Manage apps."""


@apps.command("create")
@click.argument("name")
@click.option("--test-cap-usd", default="10", show_default=True, help="Default monthly cap of test-mode users.")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="A browser origin allowed to use the app's publishable key and receive consent results (repeatable).",
)
def apps_create(name: str, test_cap_usd: str, origins: tuple[str, ...]) -> None:
    """Register an app and print its keys (shown once: Wattfare stores only their hashes)."""
    settings = Settings.from_env()
    try:
        allowed = parse_origins(" ".join(origins))
    except OriginError as exc:
        raise click.BadParameter(str(exc), param_hint="--origin") from None

    async def run() -> None:
        store = open_store(settings.database_url)
        try:
            await store.upgrade()
            made = await create_app(store, name, usd_to_nanos(test_cap_usd))
            await store.set_app_origins(made.app.id, allowed)
        finally:
            await store.close()
        table = Table(title=f"App {made.app.name} ({made.app.id})", show_lines=True)
        table.add_column("mode")
        table.add_column("secret key (server only)")
        table.add_column("publishable key (browser)")
        for mode in made.secret_keys:
            table.add_row(mode, made.secret_keys[mode], made.publishable_keys[mode])
        console.print(table)
        console.print("[yellow]Copy the secret keys now: they are not shown again.[/]")

    asyncio.run(run())


@main.group()
def credits() -> None:
    """Operator-granted credits: a member's budget when they have not linked their own provider key."""


@credits.command("grant")
@click.argument("email")
@click.argument("usd")
@click.option("--note", default="operator grant", show_default=True, help="Kept with the ledger entry.")
def credits_grant(email: str, usd: str, note: str) -> None:
    """Grant USD of credits to the member with EMAIL (appended to the credit ledger)."""
    settings = Settings.from_env()
    address = normalize_email(email)
    if address is None:
        raise click.BadParameter("not an email address", param_hint="EMAIL")
    try:
        amount = usd_to_nanos(usd, rounding="down")
    except ValueError:
        raise click.BadParameter("not an amount of US dollars", param_hint="USD") from None
    if amount <= 0:
        raise click.BadParameter("must be more than zero", param_hint="USD")

    async def run() -> CreditBalance | None:
        store = open_store(settings.database_url)
        try:
            await store.upgrade()
            found = await store.member_credentials(address)
            if found is None:
                return None
            return await store.grant_credits(found.member.id, amount, note, utc_now())
        finally:
            await store.close()

    balance = asyncio.run(run())
    if balance is None:
        console.print(f"[red]No member has the email {address}.[/]")
        raise SystemExit(1)
    console.print(
        f"[green]Granted ${nanos_to_usd(amount):f} to {address}: ${nanos_to_usd(balance.available):f} available.[/]"
    )


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    settings = Settings.from_env()

    async def run() -> list[int]:
        store = open_store(settings.database_url)
        try:
            return await store.upgrade()
        finally:
            await store.close()

    applied = asyncio.run(run())
    console.print(f"[green]Applied migrations {applied}[/]" if applied else "[green]Database is up to date.[/]")


if __name__ == "__main__":
    main()
