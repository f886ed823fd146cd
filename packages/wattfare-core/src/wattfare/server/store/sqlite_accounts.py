"""The SQLite store's human side: members, browser sessions, the console's apps and keys, members' connections."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, cast

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
from wattfare.server.store.records import AppRecord, Connection, Mode
from wattfare.server.store.rows import connection_from_row
from wattfare.server.store.timestamps import from_text, to_text

_CONNECTION_COLUMNS = "c.id, c.app_id, c.app_user_id, c.mode, c.state, c.cap, c.created_at, c.updated_at"


class SQLiteAccounts:
    """Mixed into `SQLiteStore`, which provides the connection and the write transaction."""

    _db: sqlite3.Connection

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # provided by SQLiteStore

    # -- members and their browser sessions
    async def create_member(self, member_id: str, email: str, password_hash: str, now: datetime) -> Member | None:
        """Register a member; None when the email is taken."""
        with self._write() as db:
            created = db.execute(
                "INSERT INTO members (id, email, password_hash, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (email) DO NOTHING",
                (member_id, email, password_hash, to_text(now)),
            ).rowcount
        return Member(member_id, email, now) if created == 1 else None

    async def member_credentials(self, email: str) -> MemberCredentials | None:
        """The member with this email and their password hash."""
        row = self._db.execute(
            "SELECT id, email, created_at, password_hash FROM members WHERE email = ?", (email,)
        ).fetchone()
        return MemberCredentials(Member(row[0], row[1], from_text(row[2])), row[3]) if row else None

    async def create_web_session(self, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a signed-in browser session."""
        with self._write() as db:
            db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (to_text(now),))
            db.execute(
                "INSERT INTO web_sessions (id_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (session_hash, member_id, to_text(now), to_text(expires_at)),
            )

    async def web_session_member(self, session_hash: str, now: datetime) -> Member | None:
        """The member of an unexpired browser session."""
        row = self._db.execute(
            "SELECT m.id, m.email, m.created_at FROM web_sessions s JOIN members m ON m.id = s.member_id "
            "WHERE s.id_hash = ? AND s.expires_at > ?",
            (session_hash, to_text(now)),
        ).fetchone()
        return Member(row[0], row[1], from_text(row[2])) if row else None

    async def delete_web_session(self, session_hash: str) -> None:
        """Sign a browser session out."""
        with self._write() as db:
            db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (session_hash,))

    # -- the developer console
    async def register_app(
        self, app_id: str, name: str, owner_member_id: str, default_test_cap: int, now: datetime
    ) -> AppRecord:
        """Register an app owned by a member."""
        with self._write() as db:
            db.execute(
                "INSERT INTO apps (id, name, default_test_cap, created_at, owner_member_id) VALUES (?, ?, ?, ?, ?)",
                (app_id, name, default_test_cap, to_text(now), owner_member_id),
            )
        return AppRecord(app_id, name, default_test_cap, now)

    async def set_app_origins(self, app_id: str, origins: list[str]) -> None:
        """Replace the browser origins allowed for an app."""
        with self._write() as db:
            db.execute("DELETE FROM app_origins WHERE app_id = ?", (app_id,))
            db.executemany(
                "INSERT INTO app_origins (app_id, origin) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(app_id, origin) for origin in origins],
            )

    async def output_allowance(self, app_id: str) -> int | None:
        """The app's own `max_tokens` for requests that send none (None: the server's default)."""
        row = self._db.execute("SELECT output_allowance FROM apps WHERE id = ?", (app_id,)).fetchone()
        return cast("int | None", row[0]) if row else None

    async def set_output_allowance(self, app_id: str, tokens: int | None) -> bool:
        """Set (or, with None, clear) the app's output allowance; False when there is no such app."""
        with self._write() as db:
            return db.execute("UPDATE apps SET output_allowance = ? WHERE id = ?", (tokens, app_id)).rowcount == 1

    def _profiles(self, where: str, params: tuple[Any, ...]) -> list[AppProfile]:
        rows = self._db.execute(
            "SELECT a.id, a.name, a.owner_member_id, a.default_test_cap, a.created_at, o.origin FROM apps a "
            f"LEFT JOIN app_origins o ON o.app_id = a.id WHERE {where} ORDER BY a.created_at, a.id, o.origin",
            params,
        ).fetchall()
        profiles: dict[str, AppProfile] = {}
        for row in rows:
            known = profiles.get(row[0])
            origins = (known.allowed_origins if known else ()) + ((row[5],) if row[5] else ())
            profiles[row[0]] = AppProfile(row[0], row[1], row[2], origins, row[3], from_text(row[4]))
        return list(profiles.values())

    async def app_profile(self, app_id: str) -> AppProfile | None:
        """An app with its owner and allowed origins."""
        found = self._profiles("a.id = ?", (app_id,))
        return found[0] if found else None

    async def member_apps(self, member_id: str) -> list[AppProfile]:
        """The apps a member registered."""
        return self._profiles("a.owner_member_id = ?", (member_id,))

    async def origin_registered(self, origin: str) -> bool:
        """Whether any app allows this origin."""
        return self._db.execute("SELECT 1 FROM app_origins WHERE origin = ? LIMIT 1", (origin,)).fetchone() is not None

    async def add_publishable_key(
        self, key_id: str, app_id: str, mode: Mode, key_hash: str, hint: str, display: str, now: datetime
    ) -> None:
        """Store a publishable key by its hash and its browser-safe text."""
        with self._write() as db:
            db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at, display) "
                "VALUES (?, ?, ?, 'publishable', ?, ?, ?, ?)",
                (key_id, app_id, mode, key_hash, hint, to_text(now), display),
            )

    async def find_publishable_key(self, key_hash: str) -> PublishableKey | None:
        """The unrevoked publishable key with this hash."""
        row = self._db.execute(
            "SELECT id, app_id, mode FROM api_keys WHERE key_hash = ? AND kind = 'publishable' AND revoked_at IS NULL",
            (key_hash,),
        ).fetchone()
        return PublishableKey(row[0], row[1], cast("Mode", row[2])) if row else None

    async def app_keys(self, app_id: str) -> list[AppKey]:
        """Every key of an app."""
        rows = self._db.execute(
            "SELECT id, mode, kind, hint, display, created_at, revoked_at FROM api_keys WHERE app_id = ? "
            "ORDER BY created_at, id",
            (app_id,),
        ).fetchall()
        return [AppKey(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6]) if r[6] else None) for r in rows]

    async def revoke_key(self, app_id: str, key_id: str, now: datetime) -> bool:
        """Revoke one key of this app."""
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND app_id = ? AND revoked_at IS NULL",
                    (to_text(now), key_id, app_id),
                ).rowcount
                == 1
            )

    # -- members' connections
    async def approve_member_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, member_id: str, now: datetime
    ) -> Connection:
        """Create or re-activate a connection approved by a member."""
        with self._write() as db:
            row = db.execute(
                "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at, "
                "member_id) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?) "
                "ON CONFLICT (app_id, mode, app_user_id) DO UPDATE SET state = 'active', cap = excluded.cap, "
                "member_id = excluded.member_id, updated_at = excluded.updated_at "
                "RETURNING id, app_id, app_user_id, mode, state, cap, created_at, updated_at",
                (connection_id, app_id, app_user_id, mode, cap, to_text(now), to_text(now), member_id),
            ).fetchone()
        return connection_from_row(row)

    async def member_connections(self, member_id: str, window_key: str) -> list[MemberConnection]:
        """A member's connections with their counters for the window."""
        rows = self._db.execute(
            f"SELECT {_CONNECTION_COLUMNS}, a.name, COALESCE(k.spent, 0), COALESCE(k.reserved, 0) "
            "FROM connections c JOIN apps a ON a.id = c.app_id "
            "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = ? "
            "WHERE c.member_id = ? ORDER BY c.state, a.name, c.app_user_id",
            (window_key, member_id),
        ).fetchall()
        return [MemberConnection(connection_from_row(r[:8]), r[8], r[9], r[10]) for r in rows]

    async def set_member_cap(self, member_id: str, connection_id: str, cap: int, now: datetime) -> Connection | None:
        """Change the cap of one of this member's connections."""
        with self._write() as db:
            row = db.execute(
                "UPDATE connections SET cap = ?, updated_at = ? WHERE id = ? AND member_id = ? "
                "RETURNING id, app_id, app_user_id, mode, state, cap, created_at, updated_at",
                (cap, to_text(now), connection_id, member_id),
            ).fetchone()
        return connection_from_row(row) if row else None

    async def revoke_member_connection(self, member_id: str, connection_id: str, now: datetime) -> Connection | None:
        """Revoke one of this member's connections."""
        with self._write() as db:
            row = db.execute(
                "UPDATE connections SET state = 'revoked', updated_at = ? WHERE id = ? AND member_id = ? "
                "RETURNING id, app_id, app_user_id, mode, state, cap, created_at, updated_at",
                (to_text(now), connection_id, member_id),
            ).fetchone()
        return connection_from_row(row) if row else None

    async def member_daily_spend(self, member_id: str, start: datetime, end: datetime) -> list[DailySpend]:
        """Ledger charges of a member's connections per UTC day."""
        rows = self._db.execute(
            "SELECT substr(l.created_at, 1, 10) AS day, SUM(l.amount) FROM ledger l "
            "JOIN connections c ON c.id = l.connection_id "
            "WHERE c.member_id = ? AND l.created_at >= ? AND l.created_at < ? GROUP BY day ORDER BY day",
            (member_id, to_text(start), to_text(end)),
        ).fetchall()
        return [DailySpend(r[0], r[1]) for r in rows]

    # -- operator administration
    async def list_apps(self) -> list[AppProfile]:
        """Every app, oldest first."""
        return self._profiles("1 = 1", ())

    async def list_members(self) -> list[Member]:
        """Every member, oldest first."""
        rows = self._db.execute("SELECT id, email, created_at FROM members ORDER BY created_at, id").fetchall()
        return [Member(r[0], r[1], from_text(r[2])) for r in rows]

    async def set_member_password(self, member_id: str, password_hash: str) -> bool:
        """Replace a member's password hash and sign out their browser sessions."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE members SET password_hash = ? WHERE id = ?", (password_hash, member_id)
            ).rowcount
            db.execute("DELETE FROM web_sessions WHERE member_id = ?", (member_id,))
        return changed == 1

    async def managed_keys(self, app_id: str) -> list[ManagedKey]:
        """Every key of an app with its lifecycle."""
        rows = self._db.execute(
            f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE app_id = ? ORDER BY created_at, id", (app_id,)
        ).fetchall()
        return [managed_key_from_row(row) for row in rows]

    async def managed_key(self, key_id: str) -> ManagedKey | None:
        """The key with this id."""
        row = self._db.execute(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return managed_key_from_row(row) if row else None

    async def managed_key_by_hash(self, key_hash: str) -> ManagedKey | None:
        """The key with this hash."""
        row = self._db.execute(f"SELECT {MANAGED_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        return managed_key_from_row(row) if row else None

    async def rotate_secret_key(
        self, old_key_id: str, new_key_id: str, key_hash: str, hint: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Add a secret key in the old one's app and mode, and end the old one at `expires_at`."""
        with self._write() as db:
            old = db.execute(
                "UPDATE api_keys SET expires_at = ? WHERE id = ? AND kind = 'secret' AND revoked_at IS NULL "
                "AND expires_at IS NULL RETURNING app_id, mode",
                (to_text(expires_at), old_key_id),
            ).fetchone()
            if old is None:
                return False
            db.execute(
                "INSERT INTO api_keys (id, app_id, mode, kind, key_hash, hint, created_at) "
                "VALUES (?, ?, ?, 'secret', ?, ?, ?)",
                (new_key_id, old[0], old[1], key_hash, hint, to_text(now)),
            )
        return True
