"""Metering in SQL: the budget read, reserve and settle (the cap guarantee's two writes), and their deadlines.

Reserve and settle each run as one transaction whose guard is a single conditional UPDATE on the counters
row (`cap_guard`); on SQLite they are the hot path's grouped writes. Settle charges what
`wattfare.metering.charge_for` decides against the counters it has locked, so a cap lowered while a request
ran still bounds its charge.
"""

from __future__ import annotations

from datetime import datetime

from wattfare.metering import charge_for, nanos_to_json_number, thresholds_crossed, window_of_key
from wattfare.server.instants import utc_text
from wattfare.server.store.account_records import ConnectionFunding
from wattfare.server.store.records import (
    BudgetSnapshot,
    Connection,
    HoldCensus,
    Mode,
    NewHold,
    Settled,
    Settlement,
)
from wattfare.server.store.rows import QUALIFIED_CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.sql.cap_guard import (
    HOLD_AND_RECORD,
    hold_and_record_params,
    hold_on_counters,
    record_hold,
)
from wattfare.server.store.sql.credit_holds import hold_credits, record_credit_hold, settle_credit_hold
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.grants import count_grant_request, give_back_grant_request
from wattfare.server.store.sql.outbox import record_event
from wattfare.server.store.sql.statement import id_list, per_dialect, portable, postgres_only, with_id_list
from wattfare.server.store.timestamps import from_text, to_text
from wattfare.server.store.webhook_records import connection_event

_BUDGET = portable(
    f"SELECT {QUALIFIED_CONNECTION_COLUMNS}, COALESCE(k.spent, 0), COALESCE(k.reserved, 0) FROM connections c "
    "LEFT JOIN counters k ON k.connection_id = c.id AND k.window_key = ? "
    "WHERE c.app_id = ? AND c.mode = ? AND c.app_user_id = ?"
)
_FUNDING = portable(
    "SELECT c.member_id, p.ciphertext, COALESCE(a.granted - a.spent - a.reserved, 0), g.ciphertext FROM connections c "
    "LEFT JOIN provider_keys p ON p.member_id = c.member_id "
    "LEFT JOIN credit_accounts a ON a.member_id = c.member_id "
    "LEFT JOIN ceiling_keys g ON g.member_id = c.member_id WHERE c.id = ?"
)
_TAKE_HOLD = portable(
    "DELETE FROM holds WHERE id = ? RETURNING connection_id, window_key, amount, model, endpoint, grant_id"
)
# The charge is decided against `spent` as it stands: PostgreSQL locks the counters row before reading it (another
# instance may be settling on it); SQLite's write transaction already excludes every other writer.
_OWNER_AND_SPENT = (
    f"SELECT {QUALIFIED_CONNECTION_COLUMNS}, k.spent, k.alerted, c.member_id, c.alert_percent FROM connections c "
    "JOIN counters k ON k.connection_id = c.id AND k.window_key = ? WHERE c.id = ?"
)
_LOCK_OWNER_AND_SPENT = per_dialect(sqlite=_OWNER_AND_SPENT, postgres=f"{_OWNER_AND_SPENT} FOR UPDATE OF k")
_SPEND = portable(
    "UPDATE counters SET reserved = reserved - ?, spent = spent + ?, alerted = ? "
    "WHERE connection_id = ? AND window_key = ? RETURNING spent, reserved"
)
_APPEND_LEDGER = portable(
    "INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, "
    "amount, absorbed, prompt_tokens, completion_tokens, created_at, endpoint) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# PostgreSQL spends a round trip per statement, so there the settle takes the hold and locks its counters in one
# statement, and books the charge (counters and ledger) in another: 4 round trips with BEGIN and COMMIT, not 6.
# The lock is taken in a CTE of its own so that a hold without counters (never: the reserve made them) leaves
# the row's counter columns NULL and fails the settle's assertion, rolling the DELETE back, instead of vanishing.
_TAKE_AND_LOCK = postgres_only(
    "WITH taken AS (DELETE FROM holds WHERE id = ? "
    "RETURNING connection_id, window_key, amount, model, endpoint, grant_id), "
    "locked AS (SELECT k.spent, k.alerted FROM counters k JOIN taken t "
    "ON k.connection_id = t.connection_id AND k.window_key = t.window_key FOR UPDATE OF k) "
    f"SELECT t.connection_id, t.window_key, t.amount, t.model, t.endpoint, t.grant_id, {QUALIFIED_CONNECTION_COLUMNS}, "
    "l.spent, l.alerted, c.member_id, c.alert_percent "
    "FROM taken t JOIN connections c ON c.id = t.connection_id LEFT JOIN locked l ON TRUE"
)
_SPEND_AND_APPEND = postgres_only(
    "WITH spent AS (UPDATE counters SET reserved = reserved - ?, spent = spent + ?, alerted = ? "
    "WHERE connection_id = ? AND window_key = ? RETURNING spent, reserved), "
    "booked AS (INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, "
    "amount, absorbed, prompt_tokens, completion_tokens, created_at, endpoint) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)) "
    "SELECT spent, reserved FROM spent"
)
_MEMBER_ALERT = portable(
    "INSERT INTO member_alerts (connection_id, window_key, percent, spent, cap, created_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_RENEW = with_id_list("UPDATE holds SET expires_at = ? WHERE id IN {ids}")
_CENSUS = portable("SELECT COUNT(*), MIN(created_at) FROM holds")
_EXPIRED = portable(
    "SELECT id, connection_id, window_key, amount, model, created_at, expires_at, endpoint, grant_id FROM holds "
    "WHERE expires_at < ? ORDER BY expires_at LIMIT ?"
)


class _NotHeld(Exception):
    """Raised inside a reserve's transaction to undo the cap hold when the credits or the grant cannot take it."""


class SqlMetering(SqlConcern):
    """`protocols.Metering` over an engine."""

    # Whether the engine's writes cost a round trip per statement (PostgreSQL): the hot path's reserve and settle
    # then run as fewer, larger statements (`HOLD_AND_RECORD`, `_TAKE_AND_LOCK`, `_SPEND_AND_APPEND`) that
    # decide and write exactly what the statement-per-step path does. SQLite's grouped writes cost no round trips.
    _statements_cost_round_trips = False

    async def budget(self, app_id: str, mode: Mode, app_user_id: str, window_key: str) -> BudgetSnapshot | None:
        """The connection and its counters for the window, in one statement."""
        row = await self._engine.one(_BUDGET, window_key, app_id, mode, app_user_id)
        if row is None:
            return None
        return BudgetSnapshot(connection_from_row(row), window_key, row[8], row[9])

    async def connection_funding(self, connection_id: str) -> ConnectionFunding | None:
        """Who pays for a connection."""
        row = await self._engine.one(_FUNDING, connection_id)
        if row is None or row[0] is None:
            return None
        return ConnectionFunding(row[0], row[1], max(0, int(row[2])), row[3] if row[1] is None else None)

    async def try_reserve(self, hold: NewHold) -> bool:
        """Hold the amount iff the connection is active and it fits under the cap: one conditional UPDATE."""
        # Nothing held in one statement: a refusal (or a hold that no longer fits), which the transaction below
        # confirms, deciding as it always did.
        one_statement = self._statements_cost_round_trips and hold.grant_id is None
        if one_statement and await self._engine.write_statement(HOLD_AND_RECORD, *hold_and_record_params(hold)):
            return True
        try:
            return await self._engine.grouped_write(lambda db: _reserve(db, hold))
        except _NotHeld:
            return False

    async def try_reserve_credited(self, hold: NewHold, member_id: str) -> bool:
        """Hold the amount on the connection's cap and on the member's credits, or on neither."""
        try:
            await self._engine.grouped_write(lambda db: _reserve_credited(db, hold, member_id))
        except _NotHeld:
            return False
        return True

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        """Swap a hold for its charge and append the ledger entry, in one transaction."""
        combined = self._statements_cost_round_trips
        return await self._engine.grouped_write(lambda db: _settle(db, settlement, now, combined=combined))

    async def renew_holds(self, hold_ids: list[str], expires_at: datetime) -> int:
        """Push back the deadline of holds still in flight."""
        if not hold_ids:
            return 0
        return await self._engine.write(lambda db: db.run(_RENEW, to_text(expires_at), id_list(hold_ids)))

    async def hold_census(self) -> HoldCensus:
        """How many holds there are, and the oldest one's creation (one read of the small `holds` table)."""
        row = await self._engine.one(_CENSUS)
        assert row is not None  # an aggregate always has its row
        return HoldCensus(int(row[0]), from_text(row[1]) if row[1] is not None else None)

    async def expired_holds(self, now: datetime, limit: int = 100) -> list[NewHold]:
        """Holds past their deadline."""
        rows = await self._engine.all(_EXPIRED, to_text(now), limit)
        return [NewHold(r[0], r[1], r[2], r[3], r[4], from_text(r[5]), from_text(r[6]), r[7], r[8]) for r in rows]


async def _reserve(db: Executor, r: NewHold) -> bool:
    held = await hold_on_counters(db, r)
    if held and r.grant_id is not None and not await count_grant_request(db, r.grant_id, r.created_at):
        raise _NotHeld  # the grant is spent, expired or revoked: undo the counters' hold
    if held:
        await record_hold(db, r)
    return held


async def _reserve_credited(db: Executor, r: NewHold, member_id: str) -> None:
    # Raising undoes this write's statements (its transaction, or on SQLite its savepoint in the group), so the
    # cap is held only together with the credits.
    if not await hold_on_counters(db, r):
        raise _NotHeld
    if r.grant_id is not None and not await count_grant_request(db, r.grant_id, r.created_at):
        raise _NotHeld
    if not await hold_credits(db, r, member_id):
        raise _NotHeld
    await record_hold(db, r)
    await record_credit_hold(db, r, member_id)


async def _settle(db: Executor, s: Settlement, now: datetime, *, combined: bool) -> Settled | None:
    """Settle one hold; `combined`: in two statements (PostgreSQL), else in five (see `SqlMetering`)."""
    if combined:
        row = await db.one(_TAKE_AND_LOCK, s.hold_id)
        if row is None:
            return None
        held, owner = row[:6], row[6:]
        assert owner[8] is not None  # a hold's counters row exists from its reserve on
    else:
        held = await db.one(_TAKE_HOLD, s.hold_id)
        if held is None:
            return None
        owner = await db.one(_LOCK_OWNER_AND_SPENT, held[1], held[0])
        assert owner is not None  # a hold's counters row exists from its reserve on
    # The hold says what the request called: the ledger row books it, whoever settles.
    connection_id, window_key, amount, model, endpoint, grant_id = held
    connection = connection_from_row(owner)
    app_id, mode, app_user_id, cap = connection.app_id, connection.mode, connection.app_user_id, connection.cap
    spent_before, alerted = owner[8], owner[9]
    charge = charge_for(s.charged, held=amount, cap=cap, spent=spent_before)
    charged, absorbed = charge.charged, s.absorbed + charge.absorbed
    # Decided against the locked counters, so of many settles crossing a threshold at once exactly one announces it.
    crossed = () if grant_id is not None else thresholds_crossed(spent_before + charged, cap, alerted)
    spend = (amount, charged, max(crossed, default=alerted), connection_id, window_key)
    entry = (
        s.hold_id,
        connection_id,
        app_id,
        mode,
        app_user_id,
        window_key,
        s.kind,
        model,
        charged,
        absorbed,
        s.prompt_tokens,
        s.completion_tokens,
        to_text(now),
        endpoint,
    )
    counters = await db.one(_SPEND_AND_APPEND, *spend, *entry) if combined else await db.one(_SPEND, *spend)
    assert counters is not None
    if crossed:
        await _announce_thresholds(db, connection, crossed, counters[0], window_key, owner[10], owner[11], now)
    # After the counters, as a reserve takes them (counters, then the grant): one lock order, no deadlock.
    if grant_id is not None and s.kind == "released":
        await give_back_grant_request(db, grant_id)
    if not combined:
        await db.run(_APPEND_LEDGER, *entry)
    # Same transaction: a credit-funded request's credits are charged exactly when its counters are.
    if s.holds_credits:
        await settle_credit_hold(db, s.hold_id, charged, now)
    return Settled(connection_id, window_key, counters[0], counters[1], cap, charged, mode, absorbed)


async def _announce_thresholds(
    db: Executor,
    connection: Connection,
    crossed: tuple[int, ...],
    spent: int,
    window_key: str,
    member_id: str | None,
    alert_percent: int | None,
    now: datetime,
) -> None:
    """Inside the settle that crossed them: `budget.threshold` for each, and the member's email if they chose one."""
    resets_at = utc_text(window_of_key(window_key).end)
    for percent in crossed:
        data = {"percent": percent, "spentUsd": nanos_to_json_number(spent), "resetsAt": resets_at}
        await record_event(db, connection_event("budget.threshold", connection, now, **data))
    if member_id is not None and connection.mode == "live" and alert_percent in crossed:
        await db.run(_MEMBER_ALERT, connection.id, window_key, alert_percent, spent, connection.cap, to_text(now))
