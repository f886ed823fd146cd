"""The store interface: every durable fact Wattfare keeps, behind one async protocol.

Reserve and settle are each ONE conditional write in the database, which is what keeps the cap guarantee
true across any number of server processes: no store may implement them as read-then-write in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wattfare.server.store.account_records import (
    AppKey,
    AppProfile,
    ConnectionFunding,
    CreditBalance,
    DailySpend,
    Member,
    MemberConnection,
    MemberCredentials,
    OAuthState,
    ProviderKey,
    PublishableKey,
)
from wattfare.server.store.key_records import ManagedKey
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

    async def renew_reservations(self, reservation_ids: list[str], expires_at: datetime) -> int:
        """Push back the deadline of holds whose request is still running here; return how many exist."""
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

    # -- members and their browser sessions
    async def create_member(self, member_id: str, email: str, password_hash: str, now: datetime) -> Member | None:
        """Register a member; None when the email is taken."""
        ...

    async def member_credentials(self, email: str) -> MemberCredentials | None:
        """The member with this (normalised) email and their password hash."""
        ...

    async def create_web_session(self, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a signed-in browser session by the hash of its cookie."""
        ...

    async def web_session_member(self, session_hash: str, now: datetime) -> Member | None:
        """The member of an unexpired browser session."""
        ...

    async def delete_web_session(self, session_hash: str) -> None:
        """Sign a browser session out."""
        ...

    # -- the developer console: apps, origins, keys
    async def register_app(
        self, app_id: str, name: str, owner_member_id: str, default_test_cap: int, now: datetime
    ) -> AppRecord:
        """Register an app owned by a member (apps made by the CLI have no owner)."""
        ...

    async def set_app_origins(self, app_id: str, origins: list[str]) -> None:
        """Replace the browser origins allowed for an app."""
        ...

    async def output_allowance(self, app_id: str) -> int | None:
        """The app's own `max_tokens` for requests that send none (None: the server's default)."""
        ...

    async def set_output_allowance(self, app_id: str, tokens: int | None) -> bool:
        """Set (or, with None, clear) the app's output allowance; False when there is no such app."""
        ...

    async def app_profile(self, app_id: str) -> AppProfile | None:
        """An app with its owner and allowed origins."""
        ...

    async def member_apps(self, member_id: str) -> list[AppProfile]:
        """The apps a member registered, oldest first."""
        ...

    async def origin_registered(self, origin: str) -> bool:
        """Whether any app allows this browser origin (answers CORS preflights)."""
        ...

    async def add_publishable_key(
        self, key_id: str, app_id: str, mode: Mode, key_hash: str, hint: str, display: str, now: datetime
    ) -> None:
        """Store a publishable key by its hash, and its browser-safe text for the console."""
        ...

    async def find_publishable_key(self, key_hash: str) -> PublishableKey | None:
        """The unrevoked publishable key with this hash."""
        ...

    async def app_keys(self, app_id: str) -> list[AppKey]:
        """Every key of an app, oldest first."""
        ...

    async def revoke_key(self, app_id: str, key_id: str, now: datetime) -> bool:
        """Revoke one key of this app; False when it has no such unrevoked key."""
        ...

    # -- members' connections
    async def approve_member_connection(
        self, connection_id: str, app_id: str, app_user_id: str, mode: Mode, cap: int, member_id: str, now: datetime
    ) -> Connection:
        """Create or re-activate a connection approved by a member, who funds it from now on."""
        ...

    async def member_connections(self, member_id: str, window_key: str) -> list[MemberConnection]:
        """A member's connections with their counters for the window."""
        ...

    async def set_member_cap(self, member_id: str, connection_id: str, cap: int, now: datetime) -> Connection | None:
        """Change the cap of one of this member's connections; None when it is not theirs."""
        ...

    async def revoke_member_connection(self, member_id: str, connection_id: str, now: datetime) -> Connection | None:
        """Revoke one of this member's connections; None when it is not theirs."""
        ...

    async def member_daily_spend(self, member_id: str, start: datetime, end: datetime) -> list[DailySpend]:
        """Ledger charges of a member's connections per UTC day in [start, end)."""
        ...

    # -- funding
    async def grant_credits(self, member_id: str, amount: int, note: str, now: datetime) -> CreditBalance:
        """Append a grant to the credit ledger and add it to the member's balance, atomically."""
        ...

    async def credit_balance(self, member_id: str) -> CreditBalance:
        """A member's credits (zeros when never granted any)."""
        ...

    async def connection_funding(self, connection_id: str) -> ConnectionFunding | None:
        """Who pays for a connection; None when no member approved it (operator-funded)."""
        ...

    async def try_reserve_credited(self, reservation: NewReservation, member_id: str) -> bool:
        """`try_reserve`, plus the same amount held on the member's credits, in ONE transaction.

        Both guards are conditional updates (cap: spent + reserved + amount <= cap; credits: spent + reserved +
        amount <= granted); if either fails nothing is written. `settle` releases the credit hold and charges
        the credits in the same transaction that settles the counters.
        """
        ...

    async def put_provider_key(self, key: ProviderKey) -> None:
        """Store (or replace) a member's encrypted provider key."""
        ...

    async def provider_key(self, member_id: str) -> ProviderKey | None:
        """A member's encrypted provider key, if linked."""
        ...

    async def delete_provider_key(self, member_id: str) -> bool:
        """Unlink a member's provider key; False when none was linked."""
        ...

    async def put_oauth_state(self, state_hash: str, member_id: str, verifier: str, expires_at: datetime) -> None:
        """Remember a pending OAuth PKCE link."""
        ...

    async def take_oauth_state(self, state_hash: str, now: datetime) -> OAuthState | None:
        """Consume a pending OAuth link (single use); None when unknown or expired."""
        ...

    # -- operator administration (the `wattfare` command)
    async def list_apps(self) -> list[AppProfile]:
        """Every app, oldest first."""
        ...

    async def list_members(self) -> list[Member]:
        """Every member, oldest first."""
        ...

    async def set_member_password(self, member_id: str, password_hash: str) -> bool:
        """Replace a member's password hash and sign out all their browser sessions, atomically.

        False when there is no such member.
        """
        ...

    async def managed_keys(self, app_id: str) -> list[ManagedKey]:
        """Every key of an app with its lifecycle, oldest first."""
        ...

    async def managed_key(self, key_id: str) -> ManagedKey | None:
        """The key with this id, in any state."""
        ...

    async def managed_key_by_hash(self, key_hash: str) -> ManagedKey | None:
        """The key with this hash (of its plaintext), in any state."""
        ...

    async def rotate_secret_key(
        self, old_key_id: str, new_key_id: str, key_hash: str, hint: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Add a secret key for the old one's app and mode, and end the old one at `expires_at`, atomically.

        False (and nothing written) unless the old key is a secret key neither revoked nor already rotated.
        """
        ...
