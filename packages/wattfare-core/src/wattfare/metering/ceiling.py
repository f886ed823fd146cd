"""The provider ceiling's numbers: the hard monthly limit a member's provider key carries, and when two counts agree.

Pure, like the rest of `wattfare.metering`: the server reads the counts from its ledger and the provider's
key, and these functions decide.

The limit is what the member may spend through Wattfare this month, counted the way the provider counts a key
with a monthly reset (from 00:00 UTC on the 1st, as Wattfare's window):

    limit = charged this month + min(credits left, what their active caps may still spend)

Credits left are the grants not yet charged (holds in flight are inside them: a request in flight may still
spend its hold). The caps' headroom is each active live connection's cap minus its spend this month, summed:
no request the meter admits can spend past either, so a limit of the lower of the two never stops a request
the meter would let through, and anything spent past it is money the meter did not account for.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reconciliation ignores differences up to the larger of a tenth of a cent and 1% of the ledger's month (see
# `reconciliation_tolerance`).
TOLERANCE_FLOOR = 1_000_000
TOLERANCE_PERCENT = 1


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The limit (nano-USD this month) a member's provider key should carry, and whether it should be disabled.

    Attributes:
        limit: the monthly limit.
        disabled: True when the member has nothing left to spend this month: the key refuses every request.
    """

    limit: int
    disabled: bool


def ceiling_for(*, charged_this_month: int, credits_left: int, caps_headroom: int) -> Ceiling:
    """The ceiling of a credit-funded member's key (see the module docstring for why this formula)."""
    left = max(0, min(credits_left, caps_headroom))
    return Ceiling(limit=max(0, charged_this_month) + left, disabled=left == 0)


def reconciliation_tolerance(ledger: int, in_flight: int = 0) -> int:
    """How far the provider's monthly usage of a key may differ from the ledger's month before it is reported.

    The floor absorbs the provider's rounding of its usage to a float of USD; the percentage, Wattfare charging
    an upper bound where the provider's usage was missing or unbelievable; `in_flight`, requests the provider
    may have counted whose settlement Wattfare has not yet written.
    """
    return max(TOLERANCE_FLOOR, ledger * TOLERANCE_PERCENT // 100) + max(0, in_flight)
