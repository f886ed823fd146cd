"""Members and their browser sessions in SQL."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.account_records import Member, MemberCredentials
from wattfare.server.store.rows import MEMBER_COLUMNS, member_from_row
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_CREATE = portable(
    "INSERT INTO members (id, email, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (email) DO NOTHING"
)
_CREDENTIALS = portable(f"SELECT {MEMBER_COLUMNS}, password_hash FROM members WHERE email = ?")
_FORGET_EXPIRED_SESSIONS = portable("DELETE FROM web_sessions WHERE expires_at < ?")
_CREATE_SESSION = portable("INSERT INTO web_sessions (id_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
_SESSION_MEMBER = portable(
    "SELECT m.id, m.email, m.created_at FROM web_sessions s JOIN members m ON m.id = s.member_id "
    "WHERE s.id_hash = ? AND s.expires_at > ?"
)
_DELETE_SESSION = portable("DELETE FROM web_sessions WHERE id_hash = ?")


class SqlMembers(SqlConcern):
    """`account_protocols.Members` and `account_protocols.WebSessions` over an engine."""

    async def create_member(self, member_id: str, email: str, password_hash: str, now: datetime) -> Member | None:
        """Register a member; None when the email is taken."""
        created = await self._engine.write(lambda db: db.run(_CREATE, member_id, email, password_hash, to_text(now)))
        return Member(member_id, email, now) if created == 1 else None

    async def member_credentials(self, email: str) -> MemberCredentials | None:
        """The member with this email and their password hash."""
        row = await self._engine.one(_CREDENTIALS, email)
        return MemberCredentials(member_from_row(row), row[3]) if row else None

    async def create_web_session(self, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a signed-in browser session."""
        await self._engine.write(lambda db: _create_session(db, session_hash, member_id, now, expires_at))

    async def web_session_member(self, session_hash: str, now: datetime) -> Member | None:
        """The member of an unexpired browser session."""
        row = await self._engine.one(_SESSION_MEMBER, session_hash, to_text(now))
        return member_from_row(row) if row else None

    async def delete_web_session(self, session_hash: str) -> None:
        """Sign a browser session out."""
        await self._engine.write(lambda db: db.run(_DELETE_SESSION, session_hash))


async def _create_session(db: Executor, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
    await db.run(_FORGET_EXPIRED_SESSIONS, to_text(now))
    await db.run(_CREATE_SESSION, session_hash, member_id, to_text(now), to_text(expires_at))
