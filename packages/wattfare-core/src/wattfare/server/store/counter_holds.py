"""The cap guard itself: add a reservation to its window's counters iff it fits, in each SQL dialect.

One conditional UPDATE decides. The window's counters row exists from the window's first request on,
so the UPDATE is tried first; only when it matches nothing is the row created (if missing) and the
UPDATE tried once more. Trying again after the INSERT whether or not it created the row matters on
PostgreSQL: a concurrent first request may have created it, and then its INSERT does nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from wattfare.server.store.records import NewReservation

_SQLITE_HOLD = (
    "UPDATE counters SET reserved = reserved + ? WHERE connection_id = ? AND window_key = ? "
    "AND spent + reserved + ? <= (SELECT cap FROM connections WHERE id = ? AND state = 'active')"
)
_SQLITE_CREATE = "INSERT INTO counters (connection_id, window_key) VALUES (?, ?) ON CONFLICT DO NOTHING"
_POSTGRES_HOLD = (
    "UPDATE counters SET reserved = reserved + $1 WHERE connection_id = $2 AND window_key = $3 "
    "AND spent + reserved + $1 <= (SELECT cap FROM connections WHERE id = $2 AND state = 'active')"
)
_POSTGRES_CREATE = "INSERT INTO counters (connection_id, window_key) VALUES ($1, $2) ON CONFLICT DO NOTHING"


def sqlite_hold(db: sqlite3.Connection, r: NewReservation) -> bool:
    """Inside a write transaction: hold `r.amount` on its counters iff the connection is active and it fits."""
    params = (r.amount, r.connection_id, r.window_key, r.amount, r.connection_id)
    if db.execute(_SQLITE_HOLD, params).rowcount == 1:
        return True
    db.execute(_SQLITE_CREATE, (r.connection_id, r.window_key))
    return db.execute(_SQLITE_HOLD, params).rowcount == 1


async def postgres_hold(db: Any, r: NewReservation) -> bool:
    """Inside a transaction: hold `r.amount` on its counters iff the connection is active and it fits."""
    if await db.execute(_POSTGRES_HOLD, r.amount, r.connection_id, r.window_key) == "UPDATE 1":
        return True
    await db.execute(_POSTGRES_CREATE, r.connection_id, r.window_key)
    return await db.execute(_POSTGRES_HOLD, r.amount, r.connection_id, r.window_key) == "UPDATE 1"
