"""One-time grants as records: what a member allowed one app, and how much of it is used.

A grant is metered through a connection of its own whose app user id is `grant:<grant id>` (an id no app may
name: `GRANT_USER_PREFIX` is refused wherever an app names its users), so every money rule of connections
holds for it unchanged; its one budget window runs from its creation to its expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wattfare.metering import Window
from wattfare.server.store.records import Mode

GrantState = Literal["active", "used_up", "expired", "revoked"]

# The app user id of a grant's connection is this prefix and the grant's id.
GRANT_USER_PREFIX = "grant:"
GRANT_PREFIX_REFUSAL = (
    "App user ids beginning with 'grant:' are Wattfare's own (one-time grants): use another id for your user, "
    "or send a grant's token in the 'Wattfare-Grant' header."
)


def grant_user_id(grant_id: str) -> str:
    """The app user id of the connection that meters grant `grant_id`."""
    return GRANT_USER_PREFIX + grant_id


@dataclass(frozen=True, slots=True)
class NewGrant:
    """A grant about to be made: `max_amount` None means no dollar cap of its own (the funding still bounds it)."""

    id: str
    connection_id: str
    app_id: str
    mode: Mode
    member_id: str | None
    token_hash: str
    requests_allowed: int
    max_amount: int | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant, with its request count and its connection's counters (all nano-USD)."""

    id: str
    connection_id: str
    app_id: str
    mode: Mode
    member_id: str | None
    requests_allowed: int
    requests_used: int
    max_amount: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    spent: int = 0
    reserved: int = 0
    app_name: str = ""

    @property
    def app_user_id(self) -> str:
        """The app user id of the grant's connection."""
        return grant_user_id(self.id)

    @property
    def window(self) -> Window:
        """The grant's one budget window: its whole life, so its dollar cap never resets."""
        return Window(self.created_at, self.expires_at)

    @property
    def requests_left(self) -> int:
        """Requests it may still admit (those in flight count as used)."""
        return max(0, self.requests_allowed - self.requests_used)

    def state(self, now: datetime) -> GrantState:
        """Revoked, expired, used up (every request counted, or its dollar cap spent) or active."""
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        spent_out = self.max_amount is not None and self.spent >= self.max_amount
        if self.requests_left == 0 or spent_out:
            return "used_up"
        return "active"
