"""The SQLite store's funding: credits reserved together with the cap, members' provider keys, OAuth states."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TypeVar

from wattfare.server.store.account_records import ConnectionFunding, CreditBalance, OAuthState, ProviderKey
from wattfare.server.store.counter_holds import sqlite_hold
from wattfare.server.store.records import NewReservation
from wattfare.server.store.timestamps import from_text, to_text

T = TypeVar("T")


class _CreditsShort(Exception):
    """Raised inside a reserve transaction to roll back the cap hold when the credits cannot cover it."""


class SQLiteFunding:
    """Mixed into `SQLiteStore`, which provides the connection and the write transaction."""

    _db: sqlite3.Connection

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # provided by SQLiteStore

    async def _grouped(self, write: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SQLiteStore

    async def grant_credits(self, member_id: str, amount: int, note: str, now: datetime) -> CreditBalance:
        """Append a grant to the credit ledger and add it to the balance, atomically."""
        with self._write() as db:
            db.execute(
                "INSERT INTO credit_ledger (member_id, kind, amount, note, created_at) VALUES (?, 'grant', ?, ?, ?)",
                (member_id, amount, note, to_text(now)),
            )
            row = db.execute(
                "INSERT INTO credit_accounts (member_id, granted) VALUES (?, ?) ON CONFLICT (member_id) "
                "DO UPDATE SET granted = credit_accounts.granted + excluded.granted RETURNING granted, spent, reserved",
                (member_id, amount),
            ).fetchone()
        return CreditBalance(row[0], row[1], row[2])

    async def credit_balance(self, member_id: str) -> CreditBalance:
        """A member's credits."""
        row = self._db.execute(
            "SELECT granted, spent, reserved FROM credit_accounts WHERE member_id = ?", (member_id,)
        ).fetchone()
        return CreditBalance(row[0], row[1], row[2]) if row else CreditBalance(0, 0, 0)

    async def connection_funding(self, connection_id: str) -> ConnectionFunding | None:
        """Who pays for a connection."""
        row = self._db.execute(
            "SELECT c.member_id, p.ciphertext, COALESCE(a.granted - a.spent - a.reserved, 0) FROM connections c "
            "LEFT JOIN provider_keys p ON p.member_id = c.member_id "
            "LEFT JOIN credit_accounts a ON a.member_id = c.member_id WHERE c.id = ?",
            (connection_id,),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return ConnectionFunding(row[0], row[1], max(0, row[2]))

    async def try_reserve_credited(self, reservation: NewReservation, member_id: str) -> bool:
        """Hold the amount on the connection's cap and on the member's credits, or on neither."""
        try:
            await self._grouped(lambda db: self._reserve_credited_in(db, reservation, member_id))
        except _CreditsShort:
            return False
        return True

    def _reserve_credited_in(self, db: sqlite3.Connection, r: NewReservation, member_id: str) -> None:
        # Raising undoes this write's statements (its savepoint), so the cap is held only with the credits.
        if not sqlite_hold(db, r):
            raise _CreditsShort
        credited = db.execute(
            "UPDATE credit_accounts SET reserved = reserved + ? "
            "WHERE member_id = ? AND spent + reserved + ? <= granted",
            (r.amount, member_id, r.amount),
        ).rowcount
        if credited != 1:
            raise _CreditsShort
        db.execute(
            "INSERT INTO reservations (id, connection_id, window_key, amount, model, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                r.id,
                r.connection_id,
                r.window_key,
                r.amount,
                r.model,
                to_text(r.created_at),
                to_text(r.expires_at),
            ),
        )
        db.execute(
            "INSERT INTO credit_holds (reservation_id, member_id, amount) VALUES (?, ?, ?)",
            (r.id, member_id, r.amount),
        )

    def _settle_credit_hold(self, db: sqlite3.Connection, reservation_id: str, charged: int, now: datetime) -> None:
        """Inside `settle`'s transaction: swap the credit hold of a reservation (if any) for its charge."""
        hold = db.execute(
            "DELETE FROM credit_holds WHERE reservation_id = ? RETURNING member_id, amount", (reservation_id,)
        ).fetchone()
        if hold is None:
            return
        db.execute(
            "UPDATE credit_accounts SET reserved = reserved - ?, spent = spent + ? WHERE member_id = ?",
            (hold[1], charged, hold[0]),
        )
        if charged:
            db.execute(
                "INSERT INTO credit_ledger (member_id, kind, amount, request_id, created_at) "
                "VALUES (?, 'charge', ?, ?, ?)",
                (hold[0], charged, reservation_id, to_text(now)),
            )

    async def put_provider_key(self, key: ProviderKey) -> None:
        """Store (or replace) a member's encrypted provider key."""
        with self._write() as db:
            db.execute(
                "INSERT INTO provider_keys (member_id, provider, ciphertext, hint, external_user_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (member_id) DO UPDATE SET provider = excluded.provider, "
                "ciphertext = excluded.ciphertext, hint = excluded.hint, "
                "external_user_id = excluded.external_user_id, created_at = excluded.created_at",
                (key.member_id, key.provider, key.ciphertext, key.hint, key.external_user_id, to_text(key.created_at)),
            )

    async def provider_key(self, member_id: str) -> ProviderKey | None:
        """A member's encrypted provider key."""
        row = self._db.execute(
            "SELECT member_id, provider, ciphertext, hint, external_user_id, created_at FROM provider_keys "
            "WHERE member_id = ?",
            (member_id,),
        ).fetchone()
        return ProviderKey(row[0], row[1], row[2], row[3], row[4], from_text(row[5])) if row else None

    async def delete_provider_key(self, member_id: str) -> bool:
        """Unlink a member's provider key."""
        with self._write() as db:
            return db.execute("DELETE FROM provider_keys WHERE member_id = ?", (member_id,)).rowcount == 1

    async def put_oauth_state(self, state_hash: str, member_id: str, verifier: str, expires_at: datetime) -> None:
        """Remember a pending OAuth PKCE link."""
        with self._write() as db:
            db.execute(
                "INSERT INTO oauth_states (state_hash, member_id, verifier, expires_at) VALUES (?, ?, ?, ?)",
                (state_hash, member_id, verifier, to_text(expires_at)),
            )

    async def take_oauth_state(self, state_hash: str, now: datetime) -> OAuthState | None:
        """Consume a pending OAuth link."""
        with self._write() as db:
            db.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (to_text(now),))
            row = db.execute(
                "DELETE FROM oauth_states WHERE state_hash = ? RETURNING member_id, verifier", (state_hash,)
            ).fetchone()
        return OAuthState(row[0], row[1]) if row else None
