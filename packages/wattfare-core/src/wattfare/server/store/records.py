"""Plain records the store hands out: values, not live rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Mode = Literal["test", "live"]
ConnectionState = Literal["active", "revoked"]
# What a metered request called (the ledger's `endpoint` column, migration 7).
Endpoint = Literal["chat.completions", "embeddings"]
ENDPOINTS: tuple[Endpoint, ...] = ("chat.completions", "embeddings")


@dataclass(frozen=True, slots=True)
class AppRecord:
    """A developer's application."""

    id: str
    name: str
    default_test_cap: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a secret key unlocks: one app, in one mode."""

    key_id: str
    app_id: str
    app_name: str
    mode: Mode
    default_test_cap: int
    # The app's own `max_tokens` for requests that send none (None: the server's default).
    output_allowance: int | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """One member's consent to one app for one app user id, with its monthly cap (nano-USD)."""

    id: str
    app_id: str
    app_user_id: str
    mode: Mode
    state: ConnectionState
    cap: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """A connection's cap and its counters for one window, read together."""

    connection: Connection
    window_key: str
    spent: int
    reserved: int

    @property
    def remaining(self) -> int:
        """What can still be reserved in this window (never negative)."""
        return max(0, self.connection.cap - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class NewHold:
    """A hold on a connection's budget for one in-flight request."""

    id: str
    connection_id: str
    window_key: str
    amount: int
    model: str
    created_at: datetime
    expires_at: datetime
    # Kept with the hold, so whatever settles it (the request, a deferred write, the sweep) books the right kind.
    endpoint: Endpoint = "chat.completions"
    # The one-time grant this request counts against, if any (see `grant_records.Grant`).
    grant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a hold ends: what is charged, what the operator absorbs, and the usage behind it."""

    hold_id: str
    charged: int
    absorbed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kind: Literal["charge", "estimated", "expired", "released"] = "charge"
    # False when the caller knows the hold took no credit hold, so the store may skip looking for one.
    holds_credits: bool = True


@dataclass(frozen=True, slots=True)
class Settled:
    """The counters after a settlement, and what it charged."""

    connection_id: str
    window_key: str
    spent: int
    reserved: int
    cap: int
    charged: int
    # Who paid (the connection's mode) and what the cap cut from the charge: for the metrics, not the books.
    mode: Mode | None = None
    absorbed: int = 0

    @property
    def remaining(self) -> int:
        """What the window can still hold after this settlement (never negative)."""
        return max(0, self.cap - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class HoldCensus:
    """The holds in the store now, every instance's: how many, and when the oldest was placed (None: no hold)."""

    open: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Spend of one app user on one model, through one endpoint, over a period."""

    app_user_id: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: int
    endpoint: Endpoint = "chat.completions"
