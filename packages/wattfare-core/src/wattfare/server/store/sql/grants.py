"""One-time grants in SQL: made with their connection, found by token, listed, revoked, and counted.

A grant's request count moves only inside the metering transactions (`count_grant_request` on reserve,
`give_back_grant_request` when a hold is released), so it is exact under any concurrency, like the cap.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from wattfare.server.store.grant_records import Grant, NewGrant, grant_user_id
from wattfare.server.store.records import Mode
from wattfare.server.store.sql.engine import Executor, Row, SqlConcern
from wattfare.server.store.sql.outbox import record_event
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text, to_text
from wattfare.server.store.webhook_records import grant_event

_CONNECTION = portable(
    "INSERT INTO connections (id, app_id, app_user_id, mode, state, cap, created_at, updated_at, member_id) "
    "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)"
)
_GRANT = portable(
    "INSERT INTO grants (id, app_id, mode, connection_id, member_id, token_hash, requests_allowed, max_amount, "
    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A grant's connection has counters for one window only (the month it was made in), so joining them needs no key.
_COLUMNS = (
    "SELECT g.id, g.connection_id, g.app_id, g.mode, g.member_id, g.requests_allowed, g.requests_used, "
    "g.max_amount, g.created_at, g.expires_at, g.revoked_at, COALESCE(k.spent, 0), COALESCE(k.reserved, 0), a.name "
    "FROM grants g JOIN apps a ON a.id = g.app_id LEFT JOIN counters k ON k.connection_id = g.connection_id "
)
_BY_TOKEN = portable(f"{_COLUMNS}WHERE g.token_hash = ?")
_BY_ID = portable(f"{_COLUMNS}WHERE g.id = ?")
_OF_MEMBER = portable(f"{_COLUMNS}WHERE g.member_id = ? AND g.created_at >= ? ORDER BY g.created_at DESC LIMIT ?")
_OF_APP = portable(
    f"{_COLUMNS}WHERE g.app_id = ? AND g.mode = ? AND g.created_at >= ? ORDER BY g.created_at DESC LIMIT ?"
)
_REVOKE = portable(
    "UPDATE grants SET revoked_at = ? WHERE id = ? AND member_id = ? AND revoked_at IS NULL RETURNING connection_id"
)
_REVOKE_CONNECTION = portable("UPDATE connections SET state = 'revoked', updated_at = ? WHERE id = ?")
_COUNT = portable(
    "UPDATE grants SET requests_used = requests_used + 1 "
    "WHERE id = ? AND revoked_at IS NULL AND requests_used < requests_allowed AND expires_at > ?"
)
_GIVE_BACK = portable("UPDATE grants SET requests_used = requests_used - 1 WHERE id = ? AND requests_used > 0")


def _grant(row: Row) -> Grant:
    return Grant(
        id=row[0],
        connection_id=row[1],
        app_id=row[2],
        mode=cast("Mode", row[3]),
        member_id=row[4],
        requests_allowed=int(row[5]),
        requests_used=int(row[6]),
        max_amount=None if row[7] is None else int(row[7]),
        created_at=from_text(row[8]),
        expires_at=from_text(row[9]),
        revoked_at=None if row[10] is None else from_text(row[10]),
        spent=int(row[11]),
        reserved=int(row[12]),
        app_name=row[13],
    )


async def count_grant_request(db: Executor, grant_id: str, now: datetime) -> bool:
    """Inside a reserve's transaction: count one request iff the grant is live and has one left."""
    return await db.run(_COUNT, grant_id, to_text(now)) == 1


async def give_back_grant_request(db: Executor, grant_id: str) -> None:
    """Inside a release's transaction: the request reached no model, so it does not count."""
    await db.run(_GIVE_BACK, grant_id)


class SqlGrants(SqlConcern):
    """`protocols.Grants` over an engine."""

    async def create_grant(self, grant: NewGrant, cap: int) -> Grant:
        """Make a grant and the connection that meters it (with `cap`), in one transaction."""
        user = grant_user_id(grant.id)
        made = to_text(grant.created_at)
        connection = (grant.connection_id, grant.app_id, user, grant.mode, cap, made, made, grant.member_id)
        row = (
            grant.id,
            grant.app_id,
            grant.mode,
            grant.connection_id,
            grant.member_id,
            grant.token_hash,
            grant.requests_allowed,
            grant.max_amount,
            made,
            to_text(grant.expires_at),
        )

        async def work(db: Executor) -> Grant:
            await db.run(_CONNECTION, *connection)
            await db.run(_GRANT, *row)
            found = await db.one(_BY_ID, grant.id)
            assert found is not None  # made just now
            made = _grant(found)
            await record_event(db, grant_event("grant.created", made, grant.created_at))
            return made

        return await self._engine.write(work)

    async def grant_by_token(self, token_hash: str) -> Grant | None:
        """The grant whose token hashes to `token_hash`, in any state."""
        row = await self._engine.one(_BY_TOKEN, token_hash)
        return _grant(row) if row else None

    async def get_grant(self, grant_id: str) -> Grant | None:
        """A grant by id, in any state."""
        row = await self._engine.one(_BY_ID, grant_id)
        return _grant(row) if row else None

    async def member_grants(self, member_id: str, since: datetime, limit: int = 50) -> list[Grant]:
        """A member's grants made since `since`, newest first."""
        return [_grant(r) for r in await self._engine.all(_OF_MEMBER, member_id, to_text(since), limit)]

    async def app_grants(self, app_id: str, mode: Mode, since: datetime, limit: int = 50) -> list[Grant]:
        """An app's grants in one mode made since `since`, newest first."""
        return [_grant(r) for r in await self._engine.all(_OF_APP, app_id, mode, to_text(since), limit)]

    async def revoke_member_grant(self, member_id: str, grant_id: str, now: datetime) -> Grant | None:
        """Revoke one of this member's grants and its connection; None when there is no such live grant."""

        async def work(db: Executor) -> Grant | None:
            row = await db.one(_REVOKE, to_text(now), grant_id, member_id)
            if row is None:
                return None
            await db.run(_REVOKE_CONNECTION, to_text(now), row[0])
            found = await db.one(_BY_ID, grant_id)
            assert found is not None  # revoked just now
            revoked = _grant(found)
            await record_event(db, grant_event("grant.revoked", revoked, now))
            return revoked

        return await self._engine.write(work)
