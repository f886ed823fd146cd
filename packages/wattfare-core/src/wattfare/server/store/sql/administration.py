"""The operator's administration in SQL (the `wattfare` command): every app and member, passwords, key lifecycles."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.account_records import AppProfile, Member
from wattfare.server.store.key_records import MANAGED_KEY_COLUMNS, ManagedKey, managed_key_from_row
from wattfare.server.store.rows import MEMBER_COLUMNS, member_from_row
from wattfare.server.store.sql.app_profiles import EVERY_PROFILE, profiles_from_rows
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_MEMBERS = portable(f"SELECT {MEMBER_COLUMNS} FROM members ORDER BY created_at, id")
_SET_PASSWORD = portable("UPDATE members SET password_hash = ? WHERE id = ?")
_SIGN_OUT_EVERYWHERE = portable("DELETE FROM web_sessions WHERE member_id = ?")
_KEYS_OF_APP = portable(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE app_id = ? ORDER BY created_at, id")
_KEY_BY_ID = portable(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE id = ?")
_KEY_BY_HASH = portable(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?")
_END_ROTATED_KEY = portable(
    "UPDATE api_keys SET expires_at = ? WHERE id = ? AND kind = 'secret' AND revoked_at IS NULL "
    "AND expires_at IS NULL RETURNING app_id, mode"
)
_ADD_SUCCESSOR_KEY = portable(
    "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) VALUES (?, ?, ?, 'secret', ?, ?, ?)"
)


class SqlAdministration(SqlConcern):
    """`account_protocols.OperatorAdministration` over an engine."""

    async def list_apps(self) -> list[AppProfile]:
        """Every app, oldest first."""
        return profiles_from_rows(await self._engine.all(EVERY_PROFILE))

    async def list_members(self) -> list[Member]:
        """Every member, oldest first."""
        return [member_from_row(row) for row in await self._engine.all(_MEMBERS)]

    async def set_member_password(self, member_id: str, password_hash: str) -> bool:
        """Replace a member's password hash and sign out their browser sessions."""
        return await self._engine.write(lambda db: _set_password(db, member_id, password_hash))

    async def managed_keys(self, app_id: str) -> list[ManagedKey]:
        """Every key of an app with its lifecycle."""
        return [managed_key_from_row(row) for row in await self._engine.all(_KEYS_OF_APP, app_id)]

    async def managed_key(self, key_id: str) -> ManagedKey | None:
        """The key with this id."""
        row = await self._engine.one(_KEY_BY_ID, key_id)
        return managed_key_from_row(row) if row else None

    async def managed_key_by_hash(self, key_hash: str) -> ManagedKey | None:
        """The key with this hash."""
        row = await self._engine.one(_KEY_BY_HASH, key_hash)
        return managed_key_from_row(row) if row else None

    async def rotate_secret_key(
        self, old_key_id: str, new_key_id: str, key_hash: str, hint: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Add a secret key in the old one's app and mode, and end the old one at `expires_at`."""
        return await self._engine.write(
            lambda db: _rotate(db, old_key_id, new_key_id, key_hash, hint, to_text(expires_at), to_text(now))
        )


async def _set_password(db: Executor, member_id: str, password_hash: str) -> bool:
    changed = await db.run(_SET_PASSWORD, password_hash, member_id)
    await db.run(_SIGN_OUT_EVERYWHERE, member_id)
    return changed == 1


async def _rotate(
    db: Executor, old_key_id: str, new_key_id: str, key_hash: str, hint: str, expires_at: str, now: str
) -> bool:
    old = await db.one(_END_ROTATED_KEY, expires_at, old_key_id)
    if old is None:
        return False
    app_id, mode = old
    await db.run(_ADD_SUCCESSOR_KEY, new_key_id, app_id, mode, key_hash, hint, now)
    return True
