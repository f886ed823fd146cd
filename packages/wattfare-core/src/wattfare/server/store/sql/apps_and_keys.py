"""Apps, their secret keys and the server's own secrets in SQL: what authenticating a request reads."""

from __future__ import annotations

from datetime import UTC, datetime

from wattfare.server.store.records import AppRecord, KeyRecord, Mode
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text, to_text

_CREATE_APP = portable(
    "INSERT INTO apps (id, name, default_test_cap, created_at, owner_member_id) VALUES (?, ?, ?, ?, ?)"
)
_GET_APP = portable("SELECT id, name, default_test_cap, created_at FROM apps WHERE id = ?")
_ADD_KEY = portable(
    "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_FIND_SECRET_KEY = portable(
    "SELECT k.id, k.app_id, a.name, k.mode, a.default_test_cap, a.output_allowance FROM api_keys k "
    "JOIN apps a ON a.id = k.app_id "
    "WHERE k.key_hash = ? AND k.kind = 'secret' AND k.revoked_at IS NULL "
    "AND (k.expires_at IS NULL OR k.expires_at > ?)"
)
_GET_SECRET = portable("SELECT value FROM server_secrets WHERE name = ?")
_PUT_SECRET_IF_ABSENT = portable("INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")


class SqlAppsAndKeys(SqlConcern):
    """`protocols.AppsAndKeys` and `protocols.ServerSecrets` over an engine."""

    async def create_app(
        self, app_id: str, name: str, default_test_cap: int, now: datetime, owner_member_id: str | None = None
    ) -> AppRecord:
        """Register an app, owned by a member (the console) or by nobody (the CLI, `wattfare dev`)."""
        await self._engine.write(
            lambda db: db.run(_CREATE_APP, app_id, name, default_test_cap, to_text(now), owner_member_id)
        )
        return AppRecord(app_id, name, default_test_cap, now)

    async def get_app(self, app_id: str) -> AppRecord | None:
        """Read an app by id."""
        row = await self._engine.one(_GET_APP, app_id)
        return AppRecord(row[0], row[1], row[2], from_text(row[3])) if row else None

    async def add_key(
        self, key_id: str, app_id: str, mode: Mode, kind: str, key_hash: str, hint: str, now: datetime
    ) -> None:
        """Store a key by its hash."""
        await self._engine.write(lambda db: db.run(_ADD_KEY, key_id, app_id, mode, kind, key_hash, hint, to_text(now)))

    async def find_secret_key(self, key_hash: str) -> KeyRecord | None:
        """The unrevoked secret key with this hash, unless past its rotation grace, and its app."""
        row = await self._engine.one(_FIND_SECRET_KEY, key_hash, to_text(datetime.now(UTC)))
        return KeyRecord(row[0], row[1], row[2], row[3], row[4], row[5]) if row else None

    async def get_secret(self, name: str) -> str | None:
        """A server-wide secret."""
        row = await self._engine.one(_GET_SECRET, name)
        return row[0] if row else None

    async def put_secret_if_absent(self, name: str, value: str) -> str:
        """Store a secret unless one exists; return the one in force."""
        return await self._engine.write(lambda db: _put_secret_if_absent(db, name, value))


async def _put_secret_if_absent(db: Executor, name: str, value: str) -> str:
    await db.run(_PUT_SECRET_IF_ABSENT, name, value)
    row = await db.one(_GET_SECRET, name)
    assert row is not None  # inserted just now, or there already
    return row[0]
