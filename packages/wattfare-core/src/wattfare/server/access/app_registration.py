"""Creating apps and their keys (used by the CLI; the developer console will use it too)."""

from __future__ import annotations

from dataclasses import dataclass

from wattfare.server.access.keys import mint_key, new_id
from wattfare.server.instants import utc_now
from wattfare.server.store.protocols import AppsAndKeys
from wattfare.server.store.records import AppRecord, Mode


@dataclass(frozen=True, slots=True)
class ProvisionedApp:
    """A new app and its keys, in plaintext for the one time they are shown."""

    app: AppRecord
    secret_keys: dict[Mode, str]
    publishable_keys: dict[Mode, str]


async def register_app(
    store: AppsAndKeys, name: str, default_test_cap: int, modes: tuple[Mode, ...] = ("test", "live")
) -> ProvisionedApp:
    """Register an app with a secret and a publishable key per mode."""
    now = utc_now()
    app = await store.create_app(new_id("app"), name, default_test_cap, now)
    secret: dict[Mode, str] = {}
    publishable: dict[Mode, str] = {}
    for mode in modes:
        for kind, into in (("secret", secret), ("publishable", publishable)):
            key = mint_key(app.id, mode, kind)  # type: ignore[arg-type]
            await store.add_key(key.key_id, app.id, mode, kind, key.key_hash, key.hint, now)
            into[mode] = key.plaintext
    return ProvisionedApp(app, secret, publishable)
