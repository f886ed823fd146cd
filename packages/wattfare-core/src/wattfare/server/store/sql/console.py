"""The developer console in SQL: members' apps, their allowed origins and output allowance, publishable keys."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from wattfare.server.store.account_records import AppKey, AppProfile, PublishableKey
from wattfare.server.store.records import Mode
from wattfare.server.store.sql.app_profiles import PROFILE_OF_APP, PROFILES_OF_OWNER, profiles_from_rows
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text, to_text

_FORGET_ORIGINS = portable("DELETE FROM app_origins WHERE app_id = ?")
_ALLOW_ORIGIN = portable("INSERT INTO app_origins (app_id, origin) VALUES (?, ?) ON CONFLICT DO NOTHING")
_OUTPUT_ALLOWANCE = portable("SELECT output_allowance FROM apps WHERE id = ?")
_SET_OUTPUT_ALLOWANCE = portable("UPDATE apps SET output_allowance = ? WHERE id = ?")
_ORIGIN_REGISTERED = portable("SELECT 1 FROM app_origins WHERE origin = ? LIMIT 1")
_ADD_PUBLISHABLE_KEY = portable(
    "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at, display) "
    "VALUES (?, ?, ?, 'publishable', ?, ?, ?, ?)"
)
_FIND_PUBLISHABLE_KEY = portable(
    "SELECT id, app_id, mode FROM api_keys WHERE key_hash = ? AND kind = 'publishable' AND revoked_at IS NULL"
)
_APP_KEYS = portable(
    "SELECT id, mode, kind, hint, display, created_at, revoked_at FROM api_keys WHERE app_id = ? "
    "ORDER BY created_at, id"
)
_REVOKE_KEY = portable("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND app_id = ? AND revoked_at IS NULL")


class SqlDeveloperConsole(SqlConcern):
    """`account_protocols.DeveloperConsole` over an engine."""

    async def set_app_origins(self, app_id: str, origins: list[str]) -> None:
        """Replace the browser origins allowed for an app."""
        await self._engine.write(lambda db: _set_origins(db, app_id, origins))

    async def output_allowance(self, app_id: str) -> int | None:
        """The app's own `max_tokens` for requests that send none (None: the server's default)."""
        row = await self._engine.one(_OUTPUT_ALLOWANCE, app_id)
        return row[0] if row else None

    async def set_output_allowance(self, app_id: str, tokens: int | None) -> bool:
        """Set (or, with None, clear) the app's output allowance; False when there is no such app."""
        return await self._engine.write(lambda db: db.run(_SET_OUTPUT_ALLOWANCE, tokens, app_id)) == 1

    async def app_profile(self, app_id: str) -> AppProfile | None:
        """An app with its owner and allowed origins."""
        found = profiles_from_rows(await self._engine.all(PROFILE_OF_APP, app_id))
        return found[0] if found else None

    async def member_apps(self, member_id: str) -> list[AppProfile]:
        """The apps a member registered."""
        return profiles_from_rows(await self._engine.all(PROFILES_OF_OWNER, member_id))

    async def origin_registered(self, origin: str) -> bool:
        """Whether any app allows this origin."""
        return await self._engine.one(_ORIGIN_REGISTERED, origin) is not None

    async def add_publishable_key(
        self, key_id: str, app_id: str, mode: Mode, key_hash: str, hint: str, display: str, now: datetime
    ) -> None:
        """Store a publishable key by its hash and its browser-safe text."""
        await self._engine.write(
            lambda db: db.run(_ADD_PUBLISHABLE_KEY, key_id, app_id, mode, key_hash, hint, to_text(now), display)
        )

    async def find_publishable_key(self, key_hash: str) -> PublishableKey | None:
        """The unrevoked publishable key with this hash."""
        row = await self._engine.one(_FIND_PUBLISHABLE_KEY, key_hash)
        return PublishableKey(row[0], row[1], cast("Mode", row[2])) if row else None

    async def app_keys(self, app_id: str) -> list[AppKey]:
        """Every key of an app."""
        rows = await self._engine.all(_APP_KEYS, app_id)
        return [AppKey(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6]) if r[6] else None) for r in rows]

    async def revoke_key(self, app_id: str, key_id: str, now: datetime) -> bool:
        """Revoke one key of this app."""
        return await self._engine.write(lambda db: db.run(_REVOKE_KEY, to_text(now), key_id, app_id)) == 1


async def _set_origins(db: Executor, app_id: str, origins: list[str]) -> None:
    await db.run(_FORGET_ORIGINS, app_id)
    await db.run_many(_ALLOW_ORIGIN, [(app_id, origin) for origin in origins])
