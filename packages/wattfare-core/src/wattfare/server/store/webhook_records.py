"""Webhooks as records: apps' endpoints, the events Wattfare announces, and each event's delivery to each endpoint.

An event is written by the transaction that makes the change it announces (`sql.outbox.record_event`), so a
crash can neither lose one nor announce a change that did not happen. Its body is built here, from the records
the transaction holds, and never carries a prompt, a completion or a member's email. The wire is the Standard
Webhooks one: README, "Webhooks".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from wattfare.metering import nanos_to_json_number
from wattfare.server.instants import utc_text
from wattfare.server.store.grant_records import Grant
from wattfare.server.store.records import Connection, Mode

EventType = Literal[
    "connection.approved",
    "connection.revoked",
    "connection.cap_changed",
    "budget.threshold",
    "funding.invalid",
    "grant.created",
    "grant.revoked",
]
EVENT_TYPES: tuple[EventType, ...] = (
    "connection.approved",
    "connection.revoked",
    "connection.cap_changed",
    "budget.threshold",
    "funding.invalid",
    "grant.created",
    "grant.revoked",
)
FundingProblem = Literal["ceiling_reached", "key_refused", "key_unreadable"]
EndpointState = Literal["enabled", "failing", "disabled"]
DeliveryState = Literal["pending", "delivered", "failed"]


def new_event_id() -> str:
    """A fresh event id: the `webhook-id` every attempt of the event carries."""
    return "msg_" + secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be written with the change it announces."""

    app_id: str
    mode: Mode
    type: EventType
    data: dict[str, Any]
    created_at: datetime

    def body(self, event_id: str) -> dict[str, Any]:
        """The JSON body every delivery of this event sends."""
        return {
            "id": event_id,
            "type": self.type,
            "timestamp": utc_text(self.created_at),
            "mode": self.mode,
            "appId": self.app_id,
            "data": self.data,
        }


def connection_data(connection: Connection) -> dict[str, Any]:
    """A connection as events show it."""
    return {
        "id": connection.id,
        "appUserId": connection.app_user_id,
        "state": connection.state,
        "limits": {"monthlyUsd": nanos_to_json_number(connection.cap)},
    }


def connection_event(type_: EventType, connection: Connection, now: datetime, **extra: Any) -> NewEvent:
    """An event about one connection, with `extra` members in its data."""
    return NewEvent(
        connection.app_id, connection.mode, type_, {"connection": connection_data(connection), **extra}, now
    )


def grant_event(type_: EventType, grant: Grant, now: datetime) -> NewEvent:
    """An event about one grant."""
    data = {
        "id": grant.id,
        "requestsAllowed": grant.requests_allowed,
        "requestsUsed": grant.requests_used,
        "maxUsd": None if grant.max_amount is None else nanos_to_json_number(grant.max_amount),
        "expiresAt": utc_text(grant.expires_at),
        "state": grant.state(now),
    }
    return NewEvent(grant.app_id, grant.mode, type_, {"grant": data}, now)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where an app (in one mode) wants its events, and the secrets that sign them (sealed by the key vault)."""

    id: str
    app_id: str
    mode: Mode
    url: str
    description: str
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_until: datetime | None
    state: EndpointState
    failing_since: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """One event's delivery to one endpoint, claimed by this process until its lease ends."""

    event_id: str
    endpoint_id: str
    attempts: int
    body: str
    url: str
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_until: datetime | None
    mode: Mode  # a live delivery reaches public addresses only (webhooks.public_addresses)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as `/developers` lists it."""

    event_id: str
    endpoint_id: str
    type: str
    created_at: datetime
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueAlert:
    """A member's threshold email to send: which connection crossed which share of its cap, this window."""

    connection_id: str
    window_key: str
    percent: int
    member_email: str
    app_name: str
    app_user_id: str
    spent: int
    cap: int
