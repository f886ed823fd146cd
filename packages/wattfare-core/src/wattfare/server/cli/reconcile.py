"""`wattfare reconcile`: each member's ceiling key's usage at OpenRouter beside the ledger's month.

Also home of `operator_ceilings`, the provider ceiling as a command (rather than the server) builds it: with the
management key of the settings and the key vault's key (the configured one, or the one the server keeps in the
database), so `wattfare credits grant` raises a member's ceiling at once too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import click

from wattfare.metering import nanos_to_usd
from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.billing.provider_ceiling import ProviderCeilings
from wattfare.server.billing.reconciliation import KeyComparison, reconcile
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import show_rows, success, warning
from wattfare.server.instants import utc_now
from wattfare.server.settings import Settings
from wattfare.server.store import Store
from wattfare.server.upstream.openrouter_keys import OpenRouterKeys


@asynccontextmanager
async def operator_ceilings(settings: Settings, store: Store) -> AsyncGenerator[ProviderCeilings]:
    """The provider ceiling for one command (disabled without `WATTFARE_OPENROUTER_MANAGEMENT_KEY`)."""
    vault = KeyVault()
    management_key = settings.openrouter_management_key
    keys = OpenRouterKeys(settings.openrouter_url, management_key) if management_key else None
    if keys is not None:
        vault.load(
            settings.encryption_key or await store.put_secret_if_absent("provider_key_encryption_key", new_vault_key())
        )
    ceilings = ProviderCeilings(store, vault, keys, utc_now)
    try:
        yield ceilings
    finally:
        await ceilings.stop()


def _usd(nanos: int | None) -> str:
    return "unreadable" if nanos is None else f"{nanos_to_usd(nanos):f}"


@click.command("reconcile")
def reconcile_command() -> None:
    """Compare each member's OpenRouter key usage this month with Wattfare's ledger.

    A difference beyond the tolerance (the larger of $0.001 and 1% of the ledger, plus credits held by requests
    in flight) is marked and makes the command exit with status 1 (README, "The provider ceiling").
    """
    settings = load_settings()
    if settings.openrouter_management_key is None:
        raise click.ClickException(
            "nothing to reconcile: WATTFARE_OPENROUTER_MANAGEMENT_KEY is not set, so members have no ceiling keys"
        )

    async def run(store: Store) -> list[KeyComparison]:
        async with operator_ceilings(settings, store) as ceilings:
            assert ceilings.keys is not None
            return await reconcile(store, ceilings.keys, utc_now())

    compared = with_store(settings, run)
    rows = [
        (
            found.member_id,
            found.key_hash,
            _usd(found.provider_usage),
            _usd(found.ledger),
            _usd(found.difference),
            "DIFFERS" if found.beyond_tolerance else "ok",
        )
        for found in compared
    ]
    show_rows(("MEMBER", "KEY", "OPENROUTER USD", "LEDGER USD", "DIFFERENCE", "STATE"), rows, empty="No ceiling keys.")
    differing = sum(found.beyond_tolerance for found in compared)
    if differing:
        warning(f"{differing} of {len(compared)} keys differ from the ledger beyond the tolerance.")
        raise SystemExit(1)
    success(f"{len(compared)} keys agree with the ledger within the tolerance.")
