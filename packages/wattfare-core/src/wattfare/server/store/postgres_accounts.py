"""The PostgreSQL store's human side: members, browser sessions, the console's apps and keys, members' connections."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from wattfare.server.store.account_records import (
    AppKey,
    AppProfile,
    DailySpend,
    Member,
    MemberConnection,
    MemberCredentials,
    PublishableKey,
)
from wattfare.server.store.key_records import MANAGED_KEY_COLUMNS, ManagedKey, managed_key_from_row
from wattfare.server.store.records import AppRecord, Connection
from wattfare.server.store.rows import connection_from_row
from wattfare.server.store.timestamps import from_text, to_text

_CONNECTION_COLUMNS = "c.id, c.app_id, c.app_user_id, c.mode, c.state, c.cap, c.created_at, c.updated_at"
_RETURNING_CONNECTION = "RETURNING id, app_id, app_user_id, mode, state, cap, created_at, updated_at"


class PostgresAccounts:
    """Mixed into `PostgresStore`, which provides pooled connections and transactions."""

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    # -- members and their browser sessions
    async def create_member(self, member_id: str, email: str, password_hash: str, now: datetime) -> Member | None:
        """Register a member; None when the email is taken."""
        async with self._conn() as db:
            status = await db.execute(
                "INSERT INTO members (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (email) DO NOTHING",
                member_id,
                email,
                password_hash,
                to_text(now),
            )
        return Member(member_id, email, now) if status == "INSERT 0 1" else None

    async def member_credentials(self, email: str) -> MemberCredentials | None:
        """The member with this email and their password hash."""
        async with self._conn() as db:
            row = await db.fetchrow("SELECT id, email, created_at, password_hash FROM members WHERE email = $1", email)
        return MemberCredentials(Member(row[0], row[1], from_text(row[2])), row[3]) if row else None

    async def create_web_session(self, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a signed-in browser session."""
        async with self._tx() as db:
            await db.execute("DELETE FROM web_sessions WHERE expires_at < $1", to_text(now))
            await db.execute(
                "INSERT INTO web_sessions (id_hash, member_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                session_hash,
                member_id,
                to_text(now),
                to_text(expires_at),
            )

    async def web_session_member(self, session_hash: str, now: datetime) -> Member | None:
        """The member of an unexpired browser session."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "SELECT m.id, m.email, m.created_at FROM web_sessions s JOIN members m ON m.id = s.member_id "
                "WHERE s.id_hash = $1 AND s.expires_at > $2",
                session_hash,
                to_text(now),
            )
        return Member(row[0], row[1], from_text(row[2])) if row else None

    async def delete_web_session(self, session_hash: str) -> None:
        """Sign a browser session out."""
        async with self._conn() as db:
            await db.execute("DELETE FROM web_sessions WHERE id_hash = $1", session_hash)

    # -- the developer console
    async def register_app(
        self, app_id: str, name: str, owner_member_id: str, default_test_cap: int, now: datetime
    ) -> AppRecord:
        """Register an app owned by a member."""
        async with self._conn() as db:
            await db.execute(
                "INSERT INTO apps (id, name, default_test_cap, created_at, owner_member_id) "
                "VALUES ($1, $2, $3, $4, $5)",
                app_id,
                name,
                default_test_cap,
                to_text(now),
                owner_member_id,
            )
        return AppRecord(app_id, name, default_test_cap, now)

    async def set_app_origins(self, app_id: str, origins: list[str]) -> None:
        """Replace the browser origins allowed for an app."""
        async with self._tx() as db:
            await db.execute("DELETE FROM app_origins WHERE app_id = $1", app_id)
            await db.executemany(
                "INSERT INTO app_origins (app_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(app_id, origin) for origin in origins],
            )

    async def output_allowance(self, app_id: str) -> int | None:
        """The app's own `max_tokens` for requests that send none (None: the server's default)."""
        async with self._conn() as db:
            return await db.fetchval("SELECT output_allowance FROM apps WHERE id = $1", app_id)

    async def set_output_allowance(self, app_id: str, tokens: int | None) -> bool:
        """Set (or, with None, clear) the app's output allowance; False when there is no such app."""
        async with self._conn() as db:
            status = await db.execute("UPDATE apps SET output_allowance = $1 WHERE id = $2", tokens, app_id)
        return status.endswith(" 1")

    async def _profiles(self, where: str, *params: Any) -> list[AppProfile]:
        async with self._conn() as db:
            rows = await db.fetch(
                "SELECT a.id, a.name, a.owner_member_id, a.default_test_cap, a.created_at, o.origin FROM apps a "
                f"LEFT JOIN app_origins o ON o.app_id = a.id WHERE {where} ORDER BY a.created_at, a.id, o.origin",
                *params,
            )
        profiles: dict[str, AppProfile] = {}
        for row in rows:
            known = profiles.get(row[0])
            origins = (known.allowed_origins if known else ()) + ((row[5],) if row[5] else ())
            profiles[row[0]] = AppProfile(row[0], row[1], row[2], origins, row[3], from_text(row[4]))
        return list(profiles.values())

    async def app_profile(self, app_id: str) -> AppProfile | None:
        """An app with its owner and allowed origins."""
        found = await self._profiles("a.id = $1", app_id)
        return found[0] if found else None

    async def member_apps(self, member_id: str) -> list[AppProfile]:
        """The apps a member registered."""
        return await self._profiles("a.owner_member_id = $1", member_id)

    async def origin_registered(self, origin: str) -> bool:
        """Whether any app allows this origin."""
        async with self._conn() as db:
            return bool(await db.fetchval("SELECT 1 FROM app_origins WHERE origin = $1 LIMIT 1", origin))

    async def add_publishable_key(
        self, key_id: str, app_id: str, mode: str, key_hash: str, hint: str, display: str, now: datetime
    ) -> None:
        """Store a publishable key by its hash and its browser-safe text."""
        async with self._conn() as db:
            await db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at, display) "
                "VALUES ($1, $2, $3, 'publishable', $4, $5, $6, $7)",
                key_id,
                app_id,
                mode,
                key_hash,
                hint,
                to_text(now),
                display,
            )

    async def find_publishable_key(self, key_hash: str) -> PublishableKey | None:
        """The unrevoked publishable key with this hash."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "SELECT id, app_id, mode FROM api_keys "
                "WHERE key_hash = $1 AND kind = 'publishable' AND revoked_at IS NULL",
                key_hash,
            )
        return PublishableKey(row[0], row[1], row[2]) if row else None

    async def app_keys(self, app_id: str) -> list[AppKey]:
        """Every key of an app."""
        async with self._conn() as db:
            rows = await db.fetch(
                "SELECT id, mode, kind, hint, display, created_at, revoked_at FROM api_keys WHERE app_id = $1 "
                "ORDER BY created_at, id",
                app_id,
            )
        return [AppKey(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6]) if r[6] else None) for r in rows]

    async def revoke_key(self, app_id: str, key_id: str, now: datetime) -> bool:
        """Revoke one key of this app."""
        async with self._conn() as db:
            status = await db.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND app_id = $3 AND revoked_at IS NULL",
                to_text(now),
                key_id,
                app_id,
            )
        return status == "UPDATE 1"

    # -- members' connections
    async def approve_member_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: str, cap: int, member_id: str, now: datetime
    ) -> Connection:
        """Create or re-activate a connection approved by a member."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at, "
                "member_id) VALUES ($1, $2, $3, $4, 'active', $5, $6, $6, $7) "
                "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET state = 'active', cap = excluded.cap, "
                f"member_id = excluded.member_id, updated_at = excluded.updated_at {_RETURNING_CONNECTION}",
                connection_id,
                app_id,
                app_user_id,
                mode,
                cap,
                to_text(now),
                member_id,
            )
        return connection_from_row(row)

    async def member_connections(self, member_id: str, window_key: str) -> list[MemberConnection]:
        """A member's connections with their counters for the window."""
        async with self._conn() as db:
            rows = await db.fetch(
                f"SELECT {_CONNECTION_COLUMNS}, a.name, COALESCE(k.spent, 0), COALESCE(k.reserved, 0) "
                "FROM connections c JOIN apps a ON a.id = c.app_id "
                "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = $1 "
                "WHERE c.member_id = $2 ORDER BY c.state, a.name, c.app_user_id",
                window_key,
                member_id,
            )
        return [MemberConnection(connection_from_row(r), r[8], int(r[9]), int(r[10])) for r in rows]

    async def set_member_cap(self, member_id: str, connection_id: str, cap: int, now: datetime) -> Connection | None:
        """Change the cap of one of this member's connections."""
        async with self._conn() as db:
            row = await db.fetchrow(
                f"UPDATE connections SET cap = $1, updated_at = $2 WHERE id = $3 AND member_id = $4 "
                f"{_RETURNING_CONNECTION}",
                cap,
                to_text(now),
                connection_id,
                member_id,
            )
        return connection_from_row(row) if row else None

    async def revoke_member_connection(self, member_id: str, connection_id: str, now: datetime) -> Connection | None:
        """Revoke one of this member's connections."""
        async with self._conn() as db:
            row = await db.fetchrow(
                "UPDATE connections SET state = 'revoked', updated_at = $1 WHERE id = $2 AND member_id = $3 "
                f"{_RETURNING_CONNECTION}",
                to_text(now),
                connection_id,
                member_id,
            )
        return connection_from_row(row) if row else None

    async def member_daily_spend(self, member_id: str, start: datetime, end: datetime) -> list[DailySpend]:
        """Ledger charges of a member's connections per UTC day."""
        async with self._conn() as db:
            rows = await db.fetch(
                "SELECT substr(l.created_at, 1, 10) AS day, SUM(l.amount) FROM ledger l "
                "JOIN connections c ON c.id = l.connection_id "
                "WHERE c.member_id = $1 AND l.created_at >= $2 AND l.created_at < $3 GROUP BY day ORDER BY day",
                member_id,
                to_text(start),
                to_text(end),
            )
        return [DailySpend(r[0], int(r[1])) for r in rows]

    # -- operator administration
    async def list_apps(self) -> list[AppProfile]:
        """Every app, oldest first."""
        return await self._profiles("TRUE")

    async def list_members(self) -> list[Member]:
        """Every member, oldest first."""
        async with self._conn() as db:
            rows = await db.fetch("SELECT id, email, created_at FROM members ORDER BY created_at, id")
        return [Member(r[0], r[1], from_text(r[2])) for r in rows]

    async def set_member_password(self, member_id: str, password_hash: str) -> bool:
        """Replace a member's password hash and sign out their browser sessions."""
        async with self._tx() as db:
            status = await db.execute("UPDATE members SET password_hash = $1 WHERE id = $2", password_hash, member_id)
            await db.execute("DELETE FROM web_sessions WHERE member_id = $1", member_id)
        return status == "UPDATE 1"

    async def managed_keys(self, app_id: str) -> list[ManagedKey]:
        """Every key of an app with its lifecycle."""
        async with self._conn() as db:
            rows = await db.fetch(
                f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE app_id = $1 ORDER BY created_at, id", app_id
            )
        return [managed_key_from_row(row) for row in rows]

    async def managed_key(self, key_id: str) -> ManagedKey | None:
        """The key with this id."""
        async with self._conn() as db:
            row = await db.fetchrow(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return managed_key_from_row(row) if row else None

    async def managed_key_by_hash(self, key_hash: str) -> ManagedKey | None:
        """The key with this hash."""
        async with self._conn() as db:
            row = await db.fetchrow(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash)
        return managed_key_from_row(row) if row else None

    async def rotate_secret_key(
        self, old_key_id: str, new_key_id: str, key_hash: str, hint: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Add a secret key in the old one's app and mode, and end the old one at `expires_at`."""
        async with self._tx() as db:
            old = await db.fetchrow(
                "UPDATE api_keys SET expires_at = $1 WHERE id = $2 AND kind = 'secret' AND revoked_at IS NULL "
                "AND expires_at IS NULL RETURNING app_id, mode",
                to_text(expires_at),
                old_key_id,
            )
            if old is None:
                return False
            await db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) "
                "VALUES ($1, $2, $3, 'secret', $4, $5, $6)",
                new_key_id,
                old[0],
                old[1],
                key_hash,
                hint,
                to_text(now),
            )
        return True
