"""How much a settlement may charge: the rule both stores apply inside their settle transaction."""

from __future__ import annotations

from wattfare.server.store.records import Settlement


def settlement_charge(settlement: Settlement, held: int, cap: int, spent_before: int) -> tuple[int, int]:
    """The amount charged and the amount the operator absorbs.

    Never more than was held (which kept spent + reserved <= cap when the request was admitted), and never
    past the cap in force now: a member may have lowered it while the request ran. Whatever the upstream
    cost beyond that is recorded as absorbed, so the ledger still shows it.
    """
    charged = min(max(0, settlement.charged), held, max(0, cap - spent_before))
    return charged, settlement.absorbed + max(0, settlement.charged - charged)
