"""The provider ceiling in SQL: members' per-member provider keys, what bounds their month, and ceiling hits.

See `billing.provider_ceiling` for what the ceiling is and how its limit is computed from `ceiling_budget`.
"""

from __future__ import annotations

from datetime import datetime

from wattfare.metering import MAX_CAP
from wattfare.server.store.account_records import CeilingBudget, CeilingHit, CeilingKey
from wattfare.server.store.records import Mode
from wattfare.server.store.sql.engine import Row, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text, to_text

_KEY_COLUMNS = "member_id, key_hash, ciphertext, monthly_limit, disabled, synced_at"
# Two processes may create a key for the same member at once: the first row stays, the other key is deleted.
_PUT_KEY = portable(
    f"INSERT INTO ceiling_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (member_id) DO NOTHING"
)
_KEY = portable(f"SELECT {_KEY_COLUMNS} FROM ceiling_keys WHERE member_id = ?")
_KEYS = portable(f"SELECT {_KEY_COLUMNS} FROM ceiling_keys ORDER BY member_id")
_SYNCED = portable("UPDATE ceiling_keys SET monthly_limit = ?, disabled = ?, synced_at = ? WHERE member_id = ?")
# Every member whose ceiling may need a key or a new limit: those ever granted credits, and those with a key.
_FUNDED = portable("SELECT member_id FROM credit_accounts UNION SELECT member_id FROM ceiling_keys ORDER BY 1")
_CHARGED = portable(
    "SELECT COALESCE(SUM(amount), 0) FROM credit_ledger "
    "WHERE member_id = ? AND kind = 'charge' AND created_at >= ? AND created_at < ?"
)
_CREDITS_LEFT = portable("SELECT granted - spent FROM credit_accounts WHERE member_id = ?")
_CAPS_HEADROOM = portable(
    "SELECT COALESCE(SUM(CASE WHEN c.cap > COALESCE(k.spent, 0) THEN c.cap - COALESCE(k.spent, 0) ELSE 0 END), 0) "
    "FROM connections c LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = ? "
    "WHERE c.member_id = ? AND c.state = 'active' AND c.mode = 'live' AND c.app_user_id NOT LIKE 'grant:%'"
)
# A live grant may still spend what its dollar cap leaves (an uncapped one: the largest cap) while it can admit a
# request. Its window is its life, not the month, so its counters are joined without a window key. The store reads
# no clock: a grant that expired since the month's `start` still counts, so the bound errs towards too much, which
# the member's credits still cap.
_GRANTS_HEADROOM = portable(
    "SELECT COALESCE(SUM(CASE WHEN g.max_amount IS NULL THEN ? "
    "WHEN g.max_amount > COALESCE(k.spent, 0) THEN g.max_amount - COALESCE(k.spent, 0) ELSE 0 END), 0) "
    "FROM grants g LEFT JOIN counters k ON k.connection_id = g.connection_id "
    "WHERE g.member_id = ? AND g.mode = 'live' AND g.revoked_at IS NULL AND g.expires_at > ? "
    "AND g.requests_used < g.requests_allowed"
)
_LINKED = portable("SELECT 1 FROM provider_keys WHERE member_id = ?")
_RECORD_HIT = portable(
    "INSERT INTO ceiling_hits (member_id, window_key, hits, last_at) VALUES (?, ?, 1, ?) "
    "ON CONFLICT (member_id) DO UPDATE SET "
    "hits = CASE WHEN ceiling_hits.window_key = excluded.window_key THEN ceiling_hits.hits + 1 ELSE 1 END, "
    "window_key = excluded.window_key, last_at = excluded.last_at"
)
_HIT = portable("SELECT window_key, hits, last_at FROM ceiling_hits WHERE member_id = ?")
_HIT_USERS = portable(
    "SELECT c.app_user_id FROM connections c JOIN ceiling_hits h ON h.member_id = c.member_id "
    "WHERE c.app_id = ? AND c.mode = ? AND h.window_key = ? ORDER BY c.app_user_id"
)


def _key(row: Row) -> CeilingKey:
    return CeilingKey(row[0], row[1], row[2], int(row[3]), bool(row[4]), from_text(row[5]))


class SqlCeilings(SqlConcern):
    """`account_protocols.ProviderCeilings` over an engine."""

    async def put_ceiling_key(self, key: CeilingKey) -> bool:
        """Keep a member's new ceiling key; False (nothing written) when they already have one."""
        params = (key.member_id, key.key_hash, key.ciphertext, key.monthly_limit, int(key.disabled))
        return await self._engine.write(lambda db: db.run(_PUT_KEY, *params, to_text(key.synced_at))) == 1

    async def ceiling_key(self, member_id: str) -> CeilingKey | None:
        """A member's ceiling key."""
        row = await self._engine.one(_KEY, member_id)
        return _key(row) if row else None

    async def ceiling_keys(self) -> list[CeilingKey]:
        """Every member's ceiling key."""
        return [_key(row) for row in await self._engine.all(_KEYS)]

    async def ceiling_synced(self, member_id: str, monthly_limit: int, disabled: bool, now: datetime) -> None:
        """Record the limit (and state) the provider accepted for a member's ceiling key."""
        params = (monthly_limit, int(disabled), to_text(now), member_id)
        await self._engine.write(lambda db: db.run(_SYNCED, *params))

    async def ceiling_members(self) -> list[str]:
        """Every member who was ever granted credits or has a ceiling key."""
        return [row[0] for row in await self._engine.all(_FUNDED)]

    async def ceiling_budget(self, member_id: str, window_key: str, start: datetime, end: datetime) -> CeilingBudget:
        """What bounds a member's credit-funded spend in the window `[start, end)` (`window_key`)."""
        charged = await self._engine.one(_CHARGED, member_id, to_text(start), to_text(end))
        credits = await self._engine.one(_CREDITS_LEFT, member_id)
        headroom = await self._engine.one(_CAPS_HEADROOM, window_key, member_id)
        grants = await self._engine.one(_GRANTS_HEADROOM, MAX_CAP, member_id, to_text(start))
        linked = await self._engine.one(_LINKED, member_id)
        # PostgreSQL sums BIGINTs as NUMERIC (a Decimal): money is an int.
        return CeilingBudget(
            charged_this_month=int(charged[0]) if charged else 0,
            credits_left=max(0, int(credits[0])) if credits else 0,
            caps_headroom=(int(headroom[0]) if headroom else 0) + (int(grants[0]) if grants else 0),
            linked_own_key=linked is not None,
        )

    async def record_ceiling_hit(self, member_id: str, window_key: str, now: datetime) -> None:
        """Count one refusal of a member's request at the provider's ceiling."""
        await self._engine.write(lambda db: db.run(_RECORD_HIT, member_id, window_key, to_text(now)))

    async def ceiling_hit(self, member_id: str) -> CeilingHit | None:
        """The member's latest ceiling refusals (any window: compare `window_key` with the current one)."""
        row = await self._engine.one(_HIT, member_id)
        return CeilingHit(row[0], int(row[1]), from_text(row[2])) if row else None

    async def ceiling_hit_users(self, app_id: str, mode: Mode, window_key: str) -> list[str]:
        """The app's users whose member's requests were refused at the provider's ceiling in the window."""
        return [row[0] for row in await self._engine.all(_HIT_USERS, app_id, mode, window_key)]
