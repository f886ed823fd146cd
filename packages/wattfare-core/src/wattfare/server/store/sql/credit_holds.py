"""Credits held and charged alongside the cap: the part of metering a credit-funded request adds.

A credit-funded reserve holds the same amount on the member's credits as on the connection's cap, in the
same transaction; its settle releases that hold and charges the credits in the transaction that settles the
counters, so the credits are charged exactly when the counters are.
"""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.records import NewHold
from wattfare.server.store.sql.engine import Executor
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_HOLD_CREDITS = portable(
    "UPDATE credit_accounts SET reserved = reserved + ? WHERE member_id = ? AND spent + reserved + ? <= granted"
)
_RECORD_CREDIT_HOLD = portable("INSERT INTO credit_holds (hold_id, member_id, amount) VALUES (?, ?, ?)")
_TAKE_CREDIT_HOLD = portable("DELETE FROM credit_holds WHERE hold_id = ? RETURNING member_id, amount")
_CHARGE_CREDITS = portable("UPDATE credit_accounts SET reserved = reserved - ?, spent = spent + ? WHERE member_id = ?")
_APPEND_CREDIT_CHARGE = portable(
    "INSERT INTO credit_ledger (member_id, kind, amount, request_id, created_at) VALUES (?, 'charge', ?, ?, ?)"
)


async def hold_credits(db: Executor, r: NewHold, member_id: str) -> bool:
    """Inside a reserve's transaction: hold `r.amount` on the member's credits iff they cover it."""
    return await db.run(_HOLD_CREDITS, r.amount, member_id, r.amount) == 1


async def record_credit_hold(db: Executor, r: NewHold, member_id: str) -> None:
    """Inside the same transaction: remember the credit hold, for the settle that ends it."""
    await db.run(_RECORD_CREDIT_HOLD, r.id, member_id, r.amount)


async def settle_credit_hold(db: Executor, hold_id: str, charged: int, now: datetime) -> None:
    """Inside `settle`'s transaction: swap the credit hold of a hold (if any) for its charge."""
    hold = await db.one(_TAKE_CREDIT_HOLD, hold_id)
    if hold is None:
        return
    member_id, amount = hold
    await db.run(_CHARGE_CREDITS, amount, charged, member_id)
    if charged:
        await db.run(_APPEND_CREDIT_CHARGE, member_id, charged, hold_id, to_text(now))
