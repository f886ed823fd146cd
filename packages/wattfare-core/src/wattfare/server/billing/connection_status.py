"""A connection's budget as apps read it (the `ConnectionStatus` body), for the API and the consent popup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wattfare.metering import nanos_to_json_number, window_containing
from wattfare.server.instants import utc_text
from wattfare.server.store import Store
from wattfare.server.store.records import Mode


async def connection_status(store: Store, now: datetime, app_id: str, mode: Mode, app_user_id: str) -> dict[str, Any]:
    """The `ConnectionStatus` body: never an error, `connected: false` for an unknown user."""
    window = window_containing(now)
    snapshot = await store.budget(app_id, mode, app_user_id, window.key)
    resets_at = utc_text(window.end)
    if snapshot is None:
        return {
            "connected": False,
            "state": None,
            "appUserId": app_user_id,
            "limits": {"monthlyUsd": None},
            "spentUsd": 0,
            "reservedUsd": 0,
            "remainingUsd": None,
            "resetsAt": resets_at,
        }
    active = snapshot.connection.state == "active"
    return {
        "connected": active,
        "state": snapshot.connection.state,
        "appUserId": app_user_id,
        "limits": {"monthlyUsd": nanos_to_json_number(snapshot.connection.cap)},
        "spentUsd": nanos_to_json_number(snapshot.spent),
        # Held by this user's requests in flight: settled (mostly for far less) as they finish.
        "reservedUsd": nanos_to_json_number(snapshot.reserved),
        "remainingUsd": nanos_to_json_number(snapshot.remaining) if active else 0,
        "resetsAt": resets_at,
    }
