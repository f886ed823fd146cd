"""`wattfare keys`: create, list, revoke and rotate an app's keys.

Rotation issues a new secret key and keeps the old one working for a grace period (24 hours unless
`--grace` says otherwise), so the app can be redeployed with the new key before the old one stops. A running
server remembers a key's verdict for up to 5 seconds, so a revoked or expired key may still pass for that long.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from wattfare.server.access.keys import mint_key
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import moment, show_key, show_rows, success, warning
from wattfare.server.cli.params import Duration, KeyArgument, KeyReference
from wattfare.server.instants import utc_now
from wattfare.server.store import Store
from wattfare.server.store.key_records import ManagedKey
from wattfare.server.store.records import Mode

DEFAULT_GRACE = "24h"


@click.group()
def keys() -> None:
    """Manage an app's keys: create, list, revoke, rotate."""


async def _find(store: Store, ref: KeyReference) -> ManagedKey:
    if ref.key_id is not None:
        found = await store.managed_key(ref.key_id)
    else:
        found = await store.managed_key_by_hash(ref.key_hash or "")
    if found is None:
        raise click.ClickException(f"no key matches {ref.label} (see `wattfare keys list APP_ID`)")
    return found


def _state(key: ManagedKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return f"revoked {moment(key.revoked_at)}"
    if key.expires_at is not None:
        return f"{'expires' if key.expires_at > now else 'expired'} {moment(key.expires_at)}"
    return "active"


@keys.command("create")
@click.argument("app_id")
@click.option("--mode", type=click.Choice(["test", "live"]), default="test", show_default=True)
def keys_create(app_id: str, mode: Mode) -> None:
    """Mint a new secret key for APP_ID and print it whole (shown once). Existing keys keep working."""

    async def run(store: Store) -> str:
        if await store.get_app(app_id) is None:
            raise click.ClickException(f"no app has the id {app_id!r} (see `wattfare apps list`)")
        key = mint_key(app_id, mode, "secret")
        await store.add_key(key.key_id, app_id, mode, "secret", key.key_hash, key.hint, utc_now())
        return key.plaintext

    plaintext = with_store(load_settings(), run)
    show_key(f"Secret key, {mode} mode (server only)", plaintext)
    warning("Copy it now: it is not shown again.")


@keys.command("list")
@click.argument("app_id")
def keys_list(app_id: str) -> None:
    """List APP_ID's keys: id, mode, kind, hint (whole when browser-safe), creation and state.

    States: active; `expires <time>` (rotated, still working until then); `expired <time>`; `revoked <time>`.
    """

    async def run(store: Store) -> list[ManagedKey]:
        if await store.get_app(app_id) is None:
            raise click.ClickException(f"no app has the id {app_id!r} (see `wattfare apps list`)")
        return await store.managed_keys(app_id)

    found = with_store(load_settings(), run)
    now = utc_now()
    rows = [(k.id, k.mode, k.kind, k.display or k.hint, moment(k.created_at), _state(k, now)) for k in found]
    show_rows(("ID", "MODE", "KIND", "KEY", "CREATED", "STATE"), rows, empty="This app has no keys.")


@keys.command("revoke")
@click.argument("key", type=KeyArgument())
def keys_revoke(key: KeyReference) -> None:
    """Revoke KEY at once: a key id (`key_…`, from `wattfare keys list`) or the whole key.

    Running servers stop accepting it within 5 seconds (they cache each key's verdict that long).
    """

    async def run(store: Store) -> ManagedKey:
        found = await _find(store, key)
        if found.revoked_at is not None or not await store.revoke_key(found.app_id, found.id, utc_now()):
            raise click.ClickException(f"{found.id} is already revoked")
        return found

    revoked = with_store(load_settings(), run)
    success(f"Revoked {revoked.kind} key {revoked.id} ({revoked.mode} mode) of app {revoked.app_id}.")


@keys.command("rotate")
@click.argument("key", type=KeyArgument())
@click.option(
    "--grace",
    type=Duration(),
    default=DEFAULT_GRACE,
    show_default=True,
    help="How long the old key keeps working, e.g. 30m, 24h, 7d, or 0 to stop it at once.",
)
def keys_rotate(key: KeyReference, grace: timedelta) -> None:
    """Replace secret KEY with a new one, printed whole (shown once); the old one keeps working for --grace.

    KEY is a key id (`key_…`, from `wattfare keys list`) or the whole secret key. After the grace period
    (24 hours by default) the old key stops authenticating; running servers notice within 5 seconds. To end it
    sooner, `wattfare keys revoke` it.
    """

    async def run(store: Store) -> tuple[ManagedKey, str, datetime]:
        old = await _find(store, key)
        now = utc_now()
        if old.kind != "secret":
            raise click.BadParameter("only secret keys rotate (publishable keys are browser-safe)", param_hint="KEY")
        if old.revoked_at is not None:
            raise click.ClickException(f"{old.id} is revoked: there is nothing to rotate")
        if old.expires_at is not None:
            ending = "stopped" if old.expires_at <= now else "stops"
            raise click.ClickException(
                f"{old.id} was rotated already (it {ending} at {moment(old.expires_at)}): rotate its replacement"
            )
        new = mint_key(old.app_id, old.mode, "secret")
        if not await store.rotate_secret_key(old.id, new.key_id, new.key_hash, new.hint, now + grace, now):
            raise click.ClickException(f"{old.id} was revoked or rotated meanwhile; nothing was changed")
        return old, new.plaintext, now + grace

    old, plaintext, ends = with_store(load_settings(), run)
    show_key(f"New secret key, {old.mode} mode (server only)", plaintext)
    warning("Copy it now: it is not shown again.")
    if grace:
        click.echo(f"The old key {old.id} keeps working until {moment(ends)}, then stops authenticating.")
    else:
        click.echo(f"The old key {old.id} stopped authenticating now.")
