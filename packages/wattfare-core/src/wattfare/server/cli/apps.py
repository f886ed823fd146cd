"""`wattfare apps`: register apps (printing their keys whole, once) and list them."""

from __future__ import annotations

import click

from wattfare.metering import nanos_to_usd
from wattfare.server.access.app_registration import ProvisionedApp, register_app
from wattfare.server.access.origins import OriginError, parse_origins
from wattfare.server.billing.output_allowance import AllowanceError, parse_allowance
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import heading, moment, show_key, show_rows, warning
from wattfare.server.cli.params import AppName, UsdAmount
from wattfare.server.store import Store
from wattfare.server.store.account_records import AppProfile

SECRET_LABEL = "Secret key, {mode} mode (server only)"  # noqa: S105 - a label, not a secret
PUBLISHABLE_LABEL = "Publishable key, {mode} mode (browser)"


@click.group()
def apps() -> None:
    """Manage apps."""


@apps.command("create")
@click.argument("name", type=AppName())
@click.option(
    "--test-cap-usd",
    "test_cap",
    type=UsdAmount(),
    default="10",
    show_default=True,
    help="Default monthly cap of test-mode users, in USD.",
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="A browser origin allowed to use the app's publishable key and receive consent results (repeatable).",
)
def apps_create(name: str, test_cap: int, origins: tuple[str, ...]) -> None:
    """Register an app and print its keys (shown once: Wattfare stores only their hashes).

    Each key is printed whole on a line of its own, at any terminal width and when piped.
    """
    try:
        allowed = parse_origins(" ".join(origins))
    except OriginError as exc:
        raise click.BadParameter(str(exc), param_hint="'--origin'") from None
    settings = load_settings()

    async def run(store: Store) -> ProvisionedApp:
        made = await register_app(store, name, test_cap)
        await store.set_app_origins(made.app.id, allowed)
        return made

    made = with_store(settings, run)
    heading(f"App {made.app.name} ({made.app.id})")
    for mode in made.secret_keys:
        click.echo()
        show_key(SECRET_LABEL.format(mode=mode), made.secret_keys[mode])
        show_key(PUBLISHABLE_LABEL.format(mode=mode), made.publishable_keys[mode])
    click.echo()
    warning("Copy the secret keys now: they are not shown again.")


@apps.command("list")
def apps_list() -> None:
    """List every app: id, name, owner (a member's id, or `-` when made by this command), origins."""

    async def run(store: Store) -> list[AppProfile]:
        return await store.list_apps()

    found = with_store(load_settings(), run)
    rows = [
        (
            app.id,
            app.name,
            app.owner_member_id or "-",
            f"${nanos_to_usd(app.default_test_cap).normalize():f}",
            moment(app.created_at),
            " ".join(app.allowed_origins) or "-",
        )
        for app in found
    ]
    show_rows(("ID", "NAME", "OWNER", "TEST CAP", "CREATED", "ORIGINS"), rows, empty="No apps yet.")


@apps.command("allowance")
@click.argument("app_id")
@click.argument("tokens", required=False)
def apps_allowance(app_id: str, tokens: str | None) -> None:
    """Show or set APP_ID's output allowance: the max_tokens sent and held for requests that send none.

    TOKENS is a whole number, or `default` for the server's defaults (WATTFARE_OUTPUT_ALLOWANCE_TOKENS, and
    WATTFARE_REASONING_OUTPUT_ALLOWANCE_TOKENS for reasoning models). Running servers apply it within seconds.
    """
    try:
        allowance = None if tokens is None else parse_allowance(tokens)
    except AllowanceError as exc:
        raise click.BadParameter(f"give {exc}", param_hint="'TOKENS'") from None
    settings = load_settings()

    async def run(store: Store) -> int | None:
        if await store.get_app(app_id) is None:
            raise click.ClickException(f"no app has the id {app_id!r} (see `wattfare apps list`)")
        if tokens is not None:
            await store.set_output_allowance(app_id, allowance)
        return await store.output_allowance(app_id)

    current = with_store(settings, run)
    if current is None:
        click.echo(
            f"{app_id}: the server's default ({settings.output_allowance_tokens} tokens, "
            f"{settings.reasoning_output_allowance_tokens} for reasoning models)"
        )
    else:
        click.echo(f"{app_id}: {current} tokens")
