"""Funding in SQL: operator-granted credits, members' own provider keys and the OAuth links that bring them.

Holding and charging credits during a request is metering's business (`credit_holds`); this is the rest.
"""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.account_records import CreditBalance, OAuthState, ProviderKey
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text, to_text

_APPEND_GRANT = portable(
    "INSERT INTO credit_ledger (member_id, kind, amount, note, created_at) VALUES (?, 'grant', ?, ?, ?)"
)
_ADD_GRANT = portable(
    "INSERT INTO credit_accounts (member_id, granted) VALUES (?, ?) ON CONFLICT (member_id) "
    "DO UPDATE SET granted = credit_accounts.granted + excluded.granted RETURNING granted, spent, reserved"
)
_BALANCE = portable("SELECT granted, spent, reserved FROM credit_accounts WHERE member_id = ?")
_PUT_PROVIDER_KEY = portable(
    "INSERT INTO provider_keys (member_id, provider, ciphertext, hint, external_user_id, created_at, monthly_limit) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (member_id) DO UPDATE SET provider = excluded.provider, "
    "ciphertext = excluded.ciphertext, hint = excluded.hint, "
    "external_user_id = excluded.external_user_id, created_at = excluded.created_at, "
    "monthly_limit = excluded.monthly_limit"
)
_PROVIDER_KEY = portable(
    "SELECT member_id, provider, ciphertext, hint, external_user_id, created_at, monthly_limit "
    "FROM provider_keys WHERE member_id = ?"
)
_DELETE_PROVIDER_KEY = portable("DELETE FROM provider_keys WHERE member_id = ?")
_PUT_OAUTH_STATE = portable(
    "INSERT INTO oauth_states (state_hash, member_id, verifier, expires_at, monthly_limit) VALUES (?, ?, ?, ?, ?)"
)
_FORGET_EXPIRED_OAUTH_STATES = portable("DELETE FROM oauth_states WHERE expires_at <= ?")
_TAKE_OAUTH_STATE = portable(
    "DELETE FROM oauth_states WHERE state_hash = ? RETURNING member_id, verifier, monthly_limit"
)


class SqlFunding(SqlConcern):
    """`account_protocols.Credits` and `account_protocols.ProviderLinks` over an engine."""

    async def grant_credits(self, member_id: str, amount: int, note: str, now: datetime) -> CreditBalance:
        """Append a grant to the credit ledger and add it to the balance, atomically."""
        return await self._engine.write(lambda db: _grant(db, member_id, amount, note, now))

    async def credit_balance(self, member_id: str) -> CreditBalance:
        """A member's credits."""
        row = await self._engine.one(_BALANCE, member_id)
        return CreditBalance(int(row[0]), int(row[1]), int(row[2])) if row else CreditBalance(0, 0, 0)

    async def put_provider_key(self, key: ProviderKey) -> None:
        """Store (or replace) a member's encrypted provider key."""
        params = (
            key.member_id,
            key.provider,
            key.ciphertext,
            key.hint,
            key.external_user_id,
            to_text(key.created_at),
            key.monthly_limit,
        )
        await self._engine.write(lambda db: db.run(_PUT_PROVIDER_KEY, *params))

    async def provider_key(self, member_id: str) -> ProviderKey | None:
        """A member's encrypted provider key."""
        row = await self._engine.one(_PROVIDER_KEY, member_id)
        if row is None:
            return None
        limit = None if row[6] is None else int(row[6])
        return ProviderKey(row[0], row[1], row[2], row[3], row[4], from_text(row[5]), limit)

    async def delete_provider_key(self, member_id: str) -> bool:
        """Unlink a member's provider key."""
        return await self._engine.write(lambda db: db.run(_DELETE_PROVIDER_KEY, member_id)) == 1

    async def put_oauth_state(
        self, state_hash: str, member_id: str, verifier: str, expires_at: datetime, monthly_limit: int | None = None
    ) -> None:
        """Remember a pending OAuth PKCE link (and the monthly limit the member asked the key to carry)."""
        params = (state_hash, member_id, verifier, to_text(expires_at), monthly_limit)
        await self._engine.write(lambda db: db.run(_PUT_OAUTH_STATE, *params))

    async def take_oauth_state(self, state_hash: str, now: datetime) -> OAuthState | None:
        """Consume a pending OAuth link."""
        row = await self._engine.write(lambda db: _take_oauth_state(db, state_hash, now))
        return OAuthState(*row) if row else None


async def _grant(db: Executor, member_id: str, amount: int, note: str, now: datetime) -> CreditBalance:
    await db.run(_APPEND_GRANT, member_id, amount, note, to_text(now))
    row = await db.one(_ADD_GRANT, member_id, amount)
    assert row is not None  # an upsert always returns its row
    return CreditBalance(int(row[0]), int(row[1]), int(row[2]))


async def _take_oauth_state(db: Executor, state_hash: str, now: datetime) -> tuple[str, str, int | None] | None:
    await db.run(_FORGET_EXPIRED_OAUTH_STATES, to_text(now))
    row = await db.one(_TAKE_OAUTH_STATE, state_hash)
    return (row[0], row[1], None if row[2] is None else int(row[2])) if row else None
