"""Wattfare's webhook events as typed values: frozen dataclasses, one per event type, and their union.

Money is `Decimal` (never a float) and instants are timezone-aware UTC, as everywhere in the SDK. `wattfare.webhooks`
reads the wire into these; they are plain values, so a receiver's tests can build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "MODES",
    "BudgetThreshold",
    "ConnectionApproved",
    "ConnectionCapChanged",
    "ConnectionRevoked",
    "FundingInvalid",
    "GrantCreated",
    "GrantRevoked",
    "Mode",
    "UnknownEvent",
    "WebhookConnection",
    "WebhookEvent",
    "WebhookGrant",
]

Mode: TypeAlias = Literal["test", "live"]
MODES: Final[tuple[Mode, ...]] = ("test", "live")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConnection:
    """A connection as an event shows it, when the event was made.

    Attributes:
        id: The connection's id (`conn_…`).
        app_user_id: Your app's id for the user (`appUserId`).
        state: `"active"` or `"revoked"` (kept as text: new states may be added).
        monthly_usd: The monthly cap in USD (`limits.monthlyUsd`).
    """

    id: str
    app_user_id: str
    state: str
    monthly_usd: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookGrant:
    """A one-time grant as an event shows it, when the event was made.

    Attributes:
        id: The grant's public id (`grt_…`).
        requests_allowed: How many requests the grant allows.
        requests_used: How many it has admitted.
        max_usd: Its dollar cap in USD; None: none.
        expires_at: When it expires (UTC).
        state: `"active"`, `"used_up"`, `"expired"` or `"revoked"` (kept as text: new states may be added).
    """

    id: str
    requests_allowed: int
    requests_used: int
    max_usd: Decimal | None
    expires_at: datetime
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    """What every event carries.

    Attributes:
        id: The event's id (`msg_…`), the `webhook-id` header: the same on every retry, so dedupe on it.
        type: The event type (`"budget.threshold"`, ...).
        timestamp: When the change happened (UTC); not when this attempt was sent.
        mode: `"test"` or `"live"`: which of your app's keys the event concerns.
        app_id: Your app's id.
        data: The raw `data` object, kept whole (fields this SDK does not know included); it takes no part in
            hashing, so events can go in a set.
    """

    id: str
    type: str
    timestamp: datetime
    mode: Mode
    app_id: str
    data: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionApproved(_Event):
    """A user approved a connection to your app: its budget may now pay for their requests.

    Attributes:
        connection: The connection approved.
    """

    type: Literal["connection.approved"] = "connection.approved"
    connection: WebhookConnection


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRevoked(_Event):
    """A connection was revoked: requests for that user answer 402 `not_connected` until they connect again.

    Attributes:
        connection: The connection revoked.
    """

    type: Literal["connection.revoked"] = "connection.revoked"
    connection: WebhookConnection


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionCapChanged(_Event):
    """The user changed the monthly cap of their connection to your app.

    Attributes:
        connection: The connection, with its new cap.
        previous_monthly_usd: The cap before the change, in USD (`previousLimits.monthlyUsd`).
    """

    type: Literal["connection.cap_changed"] = "connection.cap_changed"
    connection: WebhookConnection
    previous_monthly_usd: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetThreshold(_Event):
    """A connection's settled spend this month crossed `percent` of its cap (each percent at most once a month).

    Attributes:
        connection: The connection.
        percent: 50, 80 or 100.
        spent_usd: The settled spend this month, in USD (`spentUsd`).
        resets_at: When the month's spend resets (UTC).
    """

    type: Literal["budget.threshold"] = "budget.threshold"
    connection: WebhookConnection
    percent: int
    spent_usd: Decimal
    resets_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingInvalid(_Event):
    """The user's funding can no longer pay: requests answer 402 `funding_invalid` until they fix it on Wattfare.

    Attributes:
        connection: The connection.
        reason: `"ceiling_reached"`, `"key_refused"` or `"key_unreadable"` (kept as text: new reasons may be added).
    """

    type: Literal["funding.invalid"] = "funding.invalid"
    connection: WebhookConnection
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantCreated(_Event):
    """A member created a one-time grant for your app.

    Attributes:
        grant: The grant created.
    """

    type: Literal["grant.created"] = "grant.created"
    grant: WebhookGrant


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRevoked(_Event):
    """A member revoked a one-time grant: it serves no more requests.

    Attributes:
        grant: The grant revoked.
    """

    type: Literal["grant.revoked"] = "grant.revoked"
    grant: WebhookGrant


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(_Event):
    """An event of a type this version of the SDK does not know: read `type` and `data`, or acknowledge and ignore it.

    Wattfare may add event types; a receiver that refused them would be retried in vain.
    """


WebhookEvent: TypeAlias = (
    ConnectionApproved
    | ConnectionRevoked
    | ConnectionCapChanged
    | BudgetThreshold
    | FundingInvalid
    | GrantCreated
    | GrantRevoked
    | UnknownEvent
)
"""Any event `wattfare.webhooks.verify` returns; tell them apart with `match`/`isinstance`, or by `type`.

Every one has `id`, `type`, `timestamp`, `mode`, `app_id` and `data`; the known types add typed fields.
"""
