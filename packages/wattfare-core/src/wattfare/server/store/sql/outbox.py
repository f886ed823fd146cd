"""The webhook outbox: an event written inside the transaction of the change it announces.

`record_event` runs on the caller's executor, so the event and its deliveries commit (or roll back) with the
change: a crash loses no event and invents none. Deliveries are made for the endpoints the app has at that
moment in that mode; the delivery loop (`wattfare.server.webhooks`) sends them after the commit, off the path
of the request that made the change.
"""

from __future__ import annotations

import orjson

from wattfare.server.store.sql.engine import Executor
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text
from wattfare.server.store.webhook_records import NewEvent, new_event_id

_EVENT = portable("INSERT INTO webhook_events (id, app_id, mode, type, body, created_at) VALUES (?, ?, ?, ?, ?, ?)")
_DELIVERIES = portable(
    "INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at) "
    "SELECT ?, id, ? FROM webhook_endpoints "
    "WHERE app_id = ? AND mode = ? AND state <> 'disabled' AND deleted_at IS NULL"
)


async def record_event(db: Executor, event: NewEvent) -> str:
    """Inside a write transaction: write `event` and one pending delivery per endpoint of its app; its id."""
    event_id = new_event_id()
    made = to_text(event.created_at)
    body = orjson.dumps(event.body(event_id)).decode()
    await db.run(_EVENT, event_id, event.app_id, event.mode, event.type, body, made)
    await db.run(_DELIVERIES, event_id, made, event.app_id, event.mode)
    return event_id
