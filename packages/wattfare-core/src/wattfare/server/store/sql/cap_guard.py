"""The cap guard itself: add a hold to its window's counters iff it fits, and record the hold.

One conditional UPDATE decides. The window's counters row exists from the window's first request on,
so the UPDATE is tried first; only when it matches nothing is the row created (if missing) and the
UPDATE tried once more. Trying again after the INSERT whether or not it created the row matters on
PostgreSQL: a concurrent first request may have created it, and then its INSERT does nothing. Under READ
COMMITTED, PostgreSQL re-checks the UPDATE's WHERE clause against the newest row version after taking the
row lock, so two instances racing for the last dollar cannot both pass it; SQLite's write lock serialises
the same check across processes. On PostgreSQL a hold on a cap alone is first tried as one statement
(`HOLD_AND_RECORD`, which makes the window's counters row too); only when it holds nothing (refused) does the
transaction run, to confirm the refusal.
"""

from __future__ import annotations

from wattfare.server.store.records import NewHold
from wattfare.server.store.sql.engine import Executor
from wattfare.server.store.sql.statement import portable, postgres_only
from wattfare.server.store.timestamps import to_text

_GUARDED_UPDATE = (
    "UPDATE counters SET reserved = reserved + ? WHERE connection_id = ? AND window_key = ? "
    "AND spent + reserved + ? <= (SELECT cap FROM connections WHERE id = ? AND state = 'active')"
)
_HOLD = portable(_GUARDED_UPDATE)
_CREATE_COUNTERS = portable("INSERT INTO counters (connection_id, window_key) VALUES (?, ?) ON CONFLICT DO NOTHING")
_RECORD_HOLD = portable(
    "INSERT INTO holds (id, connection_id, window_key, amount, model, created_at, expires_at, endpoint, grant_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# The guard as an upsert, so a window's first request needs no counters row made first: a new row is inserted
# holding the amount iff it fits the cap alone; an existing one is updated iff it still fits, with the WHERE
# clause re-checked on the newest row version once it is locked, as for the UPDATE (two first requests racing:
# one inserts, the other waits on the key and then updates under the guard). A revoked or unknown connection has
# no active cap, so neither branch writes.
_UPSERTED_GUARD = (
    "INSERT INTO counters (connection_id, window_key, reserved) "
    "SELECT ?::text, ?::text, ?::bigint WHERE ? <= (SELECT cap FROM connections WHERE id = ? AND state = 'active') "
    "ON CONFLICT (connection_id, window_key) DO UPDATE SET reserved = counters.reserved + excluded.reserved "
    "WHERE counters.spent + counters.reserved + excluded.reserved "
    "<= (SELECT cap FROM connections WHERE id = counters.connection_id AND state = 'active')"
)
# The guard and the record as one statement, its own transaction: the INSERT reads the upsert's RETURNING, so the
# hold is recorded iff the guard passed, and both or neither commit: one round trip for a window's first request
# as for the next ones. PostgreSQL only (SQLite has no data-modifying CTE, and its grouped transaction costs no
# round trips anyway). The casts type the parameters PostgreSQL cannot infer.
HOLD_AND_RECORD = postgres_only(
    f"WITH held AS ({_UPSERTED_GUARD} RETURNING connection_id) "
    "INSERT INTO holds (id, connection_id, window_key, amount, model, created_at, expires_at, endpoint, grant_id) "
    "SELECT ?::text, connection_id, ?::text, ?::bigint, ?::text, ?::text, ?::text, ?::text, NULL FROM held "
    "RETURNING id"
)


def hold_and_record_params(r: NewHold) -> tuple[object, ...]:
    """`HOLD_AND_RECORD`'s parameters for a hold on a connection's cap alone (no grant, no credits)."""
    guard = (r.connection_id, r.window_key, r.amount, r.amount, r.connection_id)
    created, expires = to_text(r.created_at), to_text(r.expires_at)
    return (*guard, r.id, r.window_key, r.amount, r.model, created, expires, r.endpoint)


async def hold_on_counters(db: Executor, r: NewHold) -> bool:
    """Inside a write transaction: hold `r.amount` on its counters iff the connection is active and it fits."""
    params = (r.amount, r.connection_id, r.window_key, r.amount, r.connection_id)
    if await db.run(_HOLD, *params) == 1:
        return True
    await db.run(_CREATE_COUNTERS, r.connection_id, r.window_key)
    return await db.run(_HOLD, *params) == 1


async def record_hold(db: Executor, r: NewHold) -> None:
    """Inside the transaction that held it: keep the hold, for its settle or for the sweeper."""
    await db.run(
        _RECORD_HOLD,
        r.id,
        r.connection_id,
        r.window_key,
        r.amount,
        r.model,
        to_text(r.created_at),
        to_text(r.expires_at),
        r.endpoint,
        r.grant_id,
    )
