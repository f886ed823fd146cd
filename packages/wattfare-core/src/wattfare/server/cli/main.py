"""The `wattfare` command: run the server; manage apps, keys, members, credits and webhooks; migrate the database.

Every mistake ends in one line on stderr, never a traceback: click's usage errors (exit status 2) for a bad
argument, a `click.ClickException` (exit status 1) for everything else (an unreachable database, a busy
port, an unknown app). Keys are printed whole, each on a line of its own (see `cli_output`).
"""

from __future__ import annotations

import click

from wattfare.metering import nanos_to_usd
from wattfare.server.cli.apps import apps
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.keys import keys
from wattfare.server.cli.ledger import ledger
from wattfare.server.cli.members import members
from wattfare.server.cli.output import success
from wattfare.server.cli.params import EmailAddress, UsdAmount
from wattfare.server.cli.reconcile import operator_ceilings, reconcile_command
from wattfare.server.cli.serve import dev, serve
from wattfare.server.cli.webhooks import webhooks
from wattfare.server.instants import utc_now
from wattfare.server.store import Store
from wattfare.server.store.account_records import CreditBalance


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wattfare-core")
def main() -> None:
    """Wattfare: your users pay for your app's AI inference."""


for command in (dev, serve, apps, keys, members, webhooks, ledger, reconcile_command):
    main.add_command(command)


@main.group()
def credits() -> None:
    """Operator-granted credits: a member's budget when they have not linked their own provider key."""


@credits.command("grant")
@click.argument("email", type=EmailAddress())
@click.argument("usd", type=UsdAmount(positive=True))
@click.option("--note", default="operator grant", show_default=True, help="Kept with the ledger entry.")
def credits_grant(email: str, usd: int, note: str) -> None:
    """Grant USD of credits to the member with EMAIL (appended to the credit ledger)."""
    settings = load_settings()

    async def run(store: Store) -> CreditBalance | None:
        found = await store.member_credentials(email)
        if found is None:
            return None
        balance = await store.grant_credits(found.member.id, usd, note, utc_now())
        # The member's ceiling at the provider rises now, not at the server's next sync (best-effort).
        async with operator_ceilings(settings, store) as ceilings:
            await ceilings.after_change(found.member.id)
        return balance

    balance = with_store(settings, run)
    if balance is None:
        raise click.ClickException(f"no member has the email {email} (see `wattfare members list`)")
    success(f"Granted ${nanos_to_usd(usd):f} to {email}: ${nanos_to_usd(balance.available):f} available.")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    settings = load_settings()

    async def run(store: Store) -> list[int]:
        return await store.upgrade()

    # `with_store` migrates before it runs `run`; read what it applied from a store that starts unmigrated.
    applied = with_store(settings, run, migrate=False)
    success(f"Applied migrations {applied}" if applied else "Database is up to date.")


if __name__ == "__main__":
    main()
