"""Registering an app with its keys: the one way, for the CLI, `wattfare dev` and the developer console alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wattfare.server.access.keys import mint_key, new_id
from wattfare.server.instants import utc_now
from wattfare.server.store.account_protocols import DeveloperConsole
from wattfare.server.store.protocols import AppsAndKeys
from wattfare.server.store.records import AppRecord, Mode


class AppRegistry(AppsAndKeys, DeveloperConsole, Protocol):
    """What registering an app writes: the app, its secret keys, its publishable keys."""


@dataclass(frozen=True, slots=True)
class ProvisionedApp:
    """A new app and its keys, in plaintext for the one time the secret keys are shown."""

    app: AppRecord
    secret_keys: dict[Mode, str]
    publishable_keys: dict[Mode, str]


async def register_app(
    store: AppRegistry,
    name: str,
    default_test_cap: int,
    modes: tuple[Mode, ...] = ("test", "live"),
    *,
    owner_member_id: str | None = None,
) -> ProvisionedApp:
    """Register an app with a secret and a publishable key per mode.

    Secret keys are stored as hashes only. Publishable keys are browser-safe, so their text is kept too, and
    the console can show them again whoever registered the app.
    """
    now = utc_now()
    app = await store.create_app(new_id("app"), name, default_test_cap, now, owner_member_id)
    secret: dict[Mode, str] = {}
    publishable: dict[Mode, str] = {}
    for mode in modes:
        key = mint_key(app.id, mode, "secret")
        await store.add_key(key.key_id, app.id, mode, "secret", key.key_hash, key.hint, now)
        secret[mode] = key.plaintext
        key = mint_key(app.id, mode, "publishable")
        await store.add_publishable_key(key.key_id, app.id, mode, key.key_hash, key.hint, key.plaintext, now)
        publishable[mode] = key.plaintext
    return ProvisionedApp(app, secret, publishable)
