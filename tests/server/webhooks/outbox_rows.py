"""The outbox's tables read straight from the database (a `sqlite:///` file or a PostgreSQL URL), past the store.

What the store wrote is checked here, not through the store's own reads: an event written twice, or a delivery
made for an endpoint that should get none, shows up in these rows whatever the store's queries filter.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class EventRow:
    """One row of `webhook_events`, its body parsed."""

    id: str
    app_id: str
    mode: str
    type: str
    body: dict[str, Any]

    @property
    def connection_id(self) -> str | None:
        """The id of the connection the event is about (None for a grant's)."""
        connection = self.body["data"].get("connection")
        return None if connection is None else connection["id"]


async def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)) as db:
            return db.execute(sql).fetchall()
    db = await asyncpg.connect(url, timeout=10)
    try:
        return [tuple(row) for row in await db.fetch(sql)]
    finally:
        await db.close()


async def events(url: str) -> list[EventRow]:
    """Every event written, oldest first."""
    rows = await _fetch(url, "SELECT id, app_id, mode, type, body FROM webhook_events ORDER BY created_at, id")
    return [EventRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]


async def deliveries(url: str) -> set[tuple[str, str]]:
    """Every delivery row, as (event id, endpoint id)."""
    return {(r[0], r[1]) for r in await _fetch(url, "SELECT event_id, endpoint_id FROM webhook_deliveries")}
