"""The store interface: every durable fact Wattfare keeps, behind one async protocol.

Reserve and settle are each ONE conditional write in the database, which is what keeps the cap guarantee
true across any number of server processes: no store may implement them as read-then-write in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wattfare.server.store.records import (
    AppRecord,
    BudgetSnapshot,
    Connection,
    KeyRecord,
    Mode,
    NewReservation,
    Settled,
    Settlement,
    UsageRow,
)


class StoreUnavailableError(Exception):
    """The database cannot be reached: requests fail closed (503), never unmetered."""


class Store(Protocol):
    """Durable state: apps and keys, connections, budget counters, reservations and the ledger.

    Connections, suggested caps and ledger rows are scoped by (app, mode): test and live never mix.
    """

    async def upgrade(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    # -- apps and keys
    async def create_app(self, app_id: str, name: str, default_test_cap: int, now: datetime) -> AppRecord:
        """Register an app."""
        ...

    async def get_app(self, app_id: str) -> AppRecord | None:
        """Read an app by id."""
        ...

    async def add_key(
        self, key_id: str, app_id: str, mode: Mode, kind: str, key_hash: str, hint: str, now: datetime
    ) -> None:
        """Store a key by its hash (`kind` is "secret" or "publishable")."""
        ...

    async def find_secret_key(self, key_hash: str) -> KeyRecord | None:
        """The live (not revoked) secret key with this hash, and its app."""
        ...

    async def get_secret(self, name: str) -> str | None:
        """A server-wide secret (e.g. the token signing key)."""
        ...

    async def put_secret_if_absent(self, name: str, value: str) -> str:
        """Store a server-wide secret unless one exists; return the one in force."""
        ...

    # -- connections
    async def get_connection(self, app_id: str, mode: Mode, app_user_id: str) -> Connection | None:
        """The connection of this app user, in any state."""
        ...

    async def approve_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create or re-activate the connection with this cap."""
        ...

    async def ensure_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, now: datetime
    ) -> Connection:
        """Create an active connection unless one exists (in any state); return the one in force."""
        ...

    async def revoke_connection(self, app_id: str, mode: Mode, app_user_id: str, now: datetime) -> Connection | None:
        """Revoke the connection; None when there is none."""
        ...

    async def connection_states(self, connection_ids: list[str]) -> dict[str, str]:
        """Current state of each listed connection (for pushing revocations to streams in flight)."""
        ...

    async def remember_requested_cap(self, app_id: str, mode: Mode, app_user_id: str, cap: int, now: datetime) -> None:
        """Keep the cap an app last suggested for its user (test-mode auto-approval uses it)."""
        ...

    async def requested_cap(self, app_id: str, mode: Mode, app_user_id: str) -> int | None:
        """The cap the app last suggested for this user, if any."""
        ...

    async def spend_token(self, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a single-use token used; False when it already was (a replay)."""
        ...

    async def count_hit(self, bucket: str, window_start: datetime) -> int:
        """Count one hit in a fixed rate-limit window (atomically); return the hits so far in it."""
        ...

    # -- metering
    async def budget(self, app_id: str, mode: Mode, app_user_id: str, window_key: str) -> BudgetSnapshot | None:
        """The connection and its counters for the window, read in one statement."""
        ...

    async def try_reserve(self, reservation: NewReservation) -> bool:
        """Hold `amount` iff the connection is active and spent + reserved + amount <= cap; atomic."""
        ...

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Replace a reservation by its charge and append the ledger entry, atomically; None if already gone."""
        ...

    async def expired_reservations(self, now: datetime, limit: int = 100) -> list[NewReservation]:
        """Reservations whose request outlived its deadline (its server likely died)."""
        ...

    async def usage(
        self, app_id: str, mode: Mode, app_user_id: str | None, start: datetime, end: datetime
    ) -> list[UsageRow]:
        """Ledger totals per app user and model in [start, end)."""
        ...

    async def ledger_total(self, connection_id: str, window_key: str) -> int:
        """Sum of ledger charges of a connection in a window (the source of truth the counters derive from)."""
        ...

    async def rebuild_counters(self) -> int:
        """Recompute every `spent` counter from the ledger; return how many rows changed."""
        ...
