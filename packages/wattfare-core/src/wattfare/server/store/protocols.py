"""The store interface: every durable fact Wattfare keeps, as small async protocols and `Store`, their sum.

Each service depends on the protocol of what it uses (the rate limiter on `RateCounters`, the revocation
watcher on `Connections`, the meter on `MeteringStore`), so its needs read off its signature and a fake
for its tests implements a handful of methods, not sixty. The server builds one `Store` and hands it to all.

Reserve and settle are each ONE conditional write in the database, which is what keeps the cap guarantee
true across any number of server processes: no store may implement them as read-then-write in Python.
Connections, suggested caps and ledger rows are scoped by (app, mode): test and live never mix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wattfare.server.store.account_protocols import (
    Credits,
    DeveloperConsole,
    MemberConnections,
    Members,
    OperatorAdministration,
    PasswordResets,
    ProviderCeilings,
    ProviderLinks,
    WebSessions,
)
from wattfare.server.store.account_records import ConnectionFunding
from wattfare.server.store.archive_protocols import LedgerArchive
from wattfare.server.store.console_protocols import ConsoleUsage
from wattfare.server.store.grant_records import Grant, NewGrant
from wattfare.server.store.records import (
    AppRecord,
    BudgetSnapshot,
    Connection,
    HoldCensus,
    KeyRecord,
    Mode,
    NewHold,
    Settled,
    Settlement,
    UsageRow,
)
from wattfare.server.store.webhook_protocols import MemberAlerts, Webhooks


class StoreUnavailableError(Exception):
    """The database cannot be reached: requests fail closed (503), never unmetered."""


class Lifecycle(Protocol):
    """Opening the schema and letting go of the database."""

    async def upgrade(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class AppsAndKeys(Protocol):
    """Apps and the secret keys that unlock them (what authenticating a request reads)."""

    async def create_app(
        self, app_id: str, name: str, default_test_cap: int, now: datetime, owner_member_id: str | None = None
    ) -> AppRecord:
        """Register an app, owned by a member (the console) or by nobody (the CLI, `wattfare dev`).

        Apps with their keys are made by `access.app_registration.register_app`; tests call this directly.
        """
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
        """The live (not revoked, not past its rotation grace) secret key with this hash, and its app."""
        ...


class ServerSecrets(Protocol):
    """Server-wide secrets every instance must share (the token signing key, the vault key)."""

    async def get_secret(self, name: str) -> str | None:
        """A server-wide secret (e.g. the token signing key)."""
        ...

    async def put_secret_if_absent(self, name: str, value: str) -> str:
        """Store a server-wide secret unless one exists; return the one in force."""
        ...


class Connections(Protocol):
    """Consent of one app user to one app: its state, its cap, and the cap the app last suggested."""

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


class SingleUseTokens(Protocol):
    """Tokens that may be used once (a session token's approval): spending one twice is a replay."""

    async def spend_token(self, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a single-use token used; False when it already was (a replay)."""
        ...


class RateCounters(Protocol):
    """Fixed-window hit counters shared by every instance, so rate limits hold across a fleet."""

    async def count_hit(self, bucket: str, window_start: datetime) -> int:
        """Count one hit in a fixed rate-limit window (atomically); return the hits so far in it."""
        ...


class Metering(Protocol):
    """The cap guarantee's writes: hold a worst case under the cap, then swap it for the charge, exactly once."""

    async def budget(self, app_id: str, mode: Mode, app_user_id: str, window_key: str) -> BudgetSnapshot | None:
        """The connection and its counters for the window, read in one statement."""
        ...

    async def connection_funding(self, connection_id: str) -> ConnectionFunding | None:
        """Who pays for a connection; None when no member approved it (operator-funded)."""
        ...

    async def try_reserve(self, hold: NewHold) -> bool:
        """Hold `amount` iff the connection is active and spent + reserved + amount <= cap; atomic."""
        ...

    async def try_reserve_credited(self, hold: NewHold, member_id: str) -> bool:
        """`try_reserve`, plus the same amount held on the member's credits, in ONE transaction.

        Both guards are conditional updates (cap: spent + reserved + amount <= cap; credits: spent + reserved +
        amount <= granted); if either fails nothing is written. `settle` releases the credit hold and charges
        the credits in the same transaction that settles the counters.
        """
        ...

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Replace a hold by its charge and append the ledger entry, atomically; None if already gone."""
        ...

    async def renew_holds(self, hold_ids: list[str], expires_at: datetime) -> int:
        """Push back the deadline of holds whose request is still running here; return how many exist."""
        ...

    async def expired_holds(self, now: datetime, limit: int = 100) -> list[NewHold]:
        """Holds whose request outlived its deadline (its server likely died)."""
        ...

    async def hold_census(self) -> HoldCensus:
        """How many holds the store has now (every instance's) and when the oldest was placed.

        The readiness probe's read of the store, and the scrape's `wattfare_holds_open`.
        """
        ...


class Ledger(Protocol):
    """The append-only ledger, the source of truth: usage reports read it, counters are rebuilt from it."""

    async def usage(
        self, app_id: str, mode: Mode, app_user_id: str | None, start: datetime, end: datetime
    ) -> list[UsageRow]:
        """Ledger totals per app user and model in [start, end)."""
        ...

    async def usage_page(
        self, app_id: str, mode: Mode, start: datetime, end: datetime, *, after: str, users: int
    ) -> list[UsageRow]:
        """`usage` of the first `users` app users whose id sorts after `after` and who spent in [start, end).

        Rows come ordered by app user, so the last row's user is the cursor of the next page; `after=""` starts.
        """
        ...

    async def ledger_total(self, connection_id: str, window_key: str) -> int:
        """Sum of ledger charges of a connection in a window (the source of truth the counters derive from)."""
        ...

    async def rebuild_counters(self) -> int:
        """Recompute every `spent` counter from the ledger; return how many rows changed."""
        ...


class Grants(Protocol):
    """One-time grants: made with their connection, found by their token, listed and revoked.

    Their request count is moved by the metering writes alone: a reserve of a hold naming the grant counts one
    request in the same transaction (or holds nothing), and the release of such a hold gives it back.
    """

    async def create_grant(self, grant: NewGrant, cap: int) -> Grant:
        """Make the grant and the connection that meters it, with `cap`, in one transaction."""
        ...

    async def grant_by_token(self, token_hash: str) -> Grant | None:
        """The grant whose token hashes to `token_hash`, in any state."""
        ...

    async def get_grant(self, grant_id: str) -> Grant | None:
        """A grant by id, in any state."""
        ...

    async def member_grants(self, member_id: str, since: datetime, limit: int = 50) -> list[Grant]:
        """A member's grants made since `since`, newest first."""
        ...

    async def app_grants(self, app_id: str, mode: Mode, since: datetime, limit: int = 50) -> list[Grant]:
        """An app's grants in one mode made since `since`, newest first."""
        ...

    async def revoke_member_grant(self, member_id: str, grant_id: str, now: datetime) -> Grant | None:
        """Revoke one of the member's live grants and its connection; None when there is no such grant."""
        ...


class MeteringStore(Connections, Metering, Grants, Protocol):
    """What the meter works over: a user's connection (found, or auto-approved in test mode), grants, holds."""


class Store(
    Lifecycle,
    AppsAndKeys,
    ServerSecrets,
    Connections,
    SingleUseTokens,
    RateCounters,
    Metering,
    Grants,
    Ledger,
    LedgerArchive,
    Members,
    WebSessions,
    PasswordResets,
    DeveloperConsole,
    MemberConnections,
    Credits,
    ProviderLinks,
    ProviderCeilings,
    OperatorAdministration,
    Webhooks,
    MemberAlerts,
    ConsoleUsage,
    Protocol,
):
    """Durable state, all of it: what the server builds once and hands to every service."""
