"""Password reset links in SQL: made, read, and spent together with the new password and the end of every session."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.account_records import Member
from wattfare.server.store.rows import MEMBER_COLUMNS, member_from_row
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_FORGET_EXPIRED = portable("DELETE FROM password_resets WHERE expires_at < ?")
_CREATE = portable("INSERT INTO password_resets (token_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
_MEMBER = portable(
    "SELECT m.id, m.email, m.created_at FROM password_resets r JOIN members m ON m.id = r.member_id "
    "WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ?"
)
# One conditional write: of two resets racing with one link, exactly one finds it unused.
_SPEND = portable(
    "UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? "
    "RETURNING member_id"
)
_SPEND_OTHERS = portable("UPDATE password_resets SET used_at = ? WHERE member_id = ? AND used_at IS NULL")
_SET_PASSWORD = portable("UPDATE members SET password_hash = ? WHERE id = ?")
_END_SESSIONS = portable("DELETE FROM web_sessions WHERE member_id = ?")
_MEMBER_BY_ID = portable(f"SELECT {MEMBER_COLUMNS} FROM members WHERE id = ?")


class SqlPasswordResets(SqlConcern):
    """`account_protocols.PasswordResets` over an engine."""

    async def create_password_reset(self, token_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a reset link by the hash of its token."""
        await self._engine.write(lambda db: _create(db, token_hash, member_id, to_text(now), to_text(expires_at)))

    async def password_reset_member(self, token_hash: str, now: datetime) -> Member | None:
        """The member an unused, unexpired reset link is for."""
        row = await self._engine.one(_MEMBER, token_hash, to_text(now))
        return member_from_row(row) if row else None

    async def reset_password(self, token_hash: str, password_hash: str, now: datetime) -> Member | None:
        """Spend the link, set the password, end every session of the member; None when the link is not usable."""
        return await self._engine.write(lambda db: _reset(db, token_hash, password_hash, to_text(now)))


async def _create(db: Executor, token_hash: str, member_id: str, now: str, expires_at: str) -> None:
    await db.run(_FORGET_EXPIRED, now)
    await db.run(_CREATE, token_hash, member_id, now, expires_at)


async def _reset(db: Executor, token_hash: str, password_hash: str, now: str) -> Member | None:
    spent = await db.one(_SPEND, now, token_hash, now)
    if spent is None:
        return None
    member_id = spent[0]
    await db.run(_SPEND_OTHERS, now, member_id)
    await db.run(_SET_PASSWORD, password_hash, member_id)
    await db.run(_END_SESSIONS, member_id)
    row = await db.one(_MEMBER_BY_ID, member_id)
    assert row is not None  # the link's member: members are never deleted
    return member_from_row(row)
