"""The store interface's human side: members, their sessions and funding, the console, the operator's commands.

`protocols.Store` is the sum of these and the metering side's protocols.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wattfare.server.store.account_records import (
    AppKey,
    AppProfile,
    CeilingBudget,
    CeilingHit,
    CeilingKey,
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
from wattfare.server.store.records import Connection, Mode


class Members(Protocol):
    """People with a Wattfare account, found by email to sign in."""

    async def create_member(self, member_id: str, email: str, password_hash: str, now: datetime) -> Member | None:
        """Register a member; None when the email is taken."""
        ...

    async def member_credentials(self, email: str) -> MemberCredentials | None:
        """The member with this (normalised) email and their password hash."""
        ...


class WebSessions(Protocol):
    """Members' signed-in browser sessions, kept by the hash of their cookie."""

    async def create_web_session(self, session_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a signed-in browser session by the hash of its cookie."""
        ...

    async def web_session_member(self, session_hash: str, now: datetime) -> Member | None:
        """The member of an unexpired browser session."""
        ...

    async def delete_web_session(self, session_hash: str) -> None:
        """Sign a browser session out."""
        ...


class PasswordResets(Protocol):
    """Single-use links that let a member choose a new password, kept by the hash of their random token."""

    async def create_password_reset(self, token_hash: str, member_id: str, now: datetime, expires_at: datetime) -> None:
        """Store a reset link for `member_id` by the hash of its token (expired links are forgotten here)."""
        ...

    async def password_reset_member(self, token_hash: str, now: datetime) -> Member | None:
        """The member an unused, unexpired reset link is for; None for any other token."""
        ...

    async def reset_password(self, token_hash: str, password_hash: str, now: datetime) -> Member | None:
        """Spend the link, set the member's password and end every browser session of theirs, in one transaction.

        The member's other unused links are spent too. None (and nothing changed) when the token is unknown,
        used or expired.
        """
        ...


class DeveloperConsole(Protocol):
    """What developers manage at /developers: their apps, allowed origins, output allowance and keys."""

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


class MemberConnections(Protocol):
    """What members manage at /account: the connections they approved, their caps and their spend."""

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

    async def remove_member_connection(self, member_id: str, connection_id: str, now: datetime) -> bool:
        """Take one of this member's revoked connections off their list; its spend stays in the charts and ledger.

        False when it is not theirs, not revoked, or already removed. Approving the app again brings it back.
        """
        ...

    async def member_daily_spend(self, member_id: str, start: datetime, end: datetime) -> list[DailySpend]:
        """Ledger charges of a member's connections per UTC day in [start, end)."""
        ...


class Credits(Protocol):
    """Operator-granted credits: a ledger of grants and charges, and the balance derived from it."""

    async def grant_credits(self, member_id: str, amount: int, note: str, now: datetime) -> CreditBalance:
        """Append a grant to the credit ledger and add it to the member's balance, atomically."""
        ...

    async def credit_balance(self, member_id: str) -> CreditBalance:
        """A member's credits (zeros when never granted any)."""
        ...


class ProviderLinks(Protocol):
    """A member's own provider key, linked through OAuth PKCE and kept encrypted."""

    async def put_provider_key(self, key: ProviderKey) -> None:
        """Store (or replace) a member's encrypted provider key."""
        ...

    async def provider_key(self, member_id: str) -> ProviderKey | None:
        """A member's encrypted provider key, if linked."""
        ...

    async def delete_provider_key(self, member_id: str) -> bool:
        """Unlink a member's provider key; False when none was linked."""
        ...

    async def put_oauth_state(
        self, state_hash: str, member_id: str, verifier: str, expires_at: datetime, monthly_limit: int | None = None
    ) -> None:
        """Remember a pending OAuth PKCE link (and the monthly limit the member asked the key to carry)."""
        ...

    async def take_oauth_state(self, state_hash: str, now: datetime) -> OAuthState | None:
        """Consume a pending OAuth link (single use); None when unknown or expired."""
        ...


class ProviderCeilings(Protocol):
    """The provider ceiling (`billing.provider_ceiling`): per-member keys with a hard limit at the provider."""

    async def put_ceiling_key(self, key: CeilingKey) -> bool:
        """Keep a member's new ceiling key; False (nothing written) when they already have one."""
        ...

    async def ceiling_key(self, member_id: str) -> CeilingKey | None:
        """A member's ceiling key."""
        ...

    async def ceiling_keys(self) -> list[CeilingKey]:
        """Every member's ceiling key."""
        ...

    async def ceiling_synced(self, member_id: str, monthly_limit: int, disabled: bool, now: datetime) -> None:
        """Record the limit (and state) the provider accepted for a member's ceiling key."""
        ...

    async def ceiling_members(self) -> list[str]:
        """Every member who was ever granted credits or has a ceiling key."""
        ...

    async def ceiling_budget(self, member_id: str, window_key: str, start: datetime, end: datetime) -> CeilingBudget:
        """What bounds a member's credit-funded spend in the window `[start, end)` (`window_key`)."""
        ...

    async def record_ceiling_hit(self, member_id: str, window_key: str, now: datetime) -> None:
        """Count one refusal of a member's request at the provider's ceiling."""
        ...

    async def ceiling_hit(self, member_id: str) -> CeilingHit | None:
        """The member's latest ceiling refusals (any window: compare `window_key` with the current one)."""
        ...

    async def ceiling_hit_users(self, app_id: str, mode: Mode, window_key: str) -> list[str]:
        """The app's users whose member's requests were refused at the provider's ceiling in the window."""
        ...


class OperatorAdministration(Protocol):
    """What the `wattfare` command administers: every app and member, passwords, keys and their rotation."""

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
