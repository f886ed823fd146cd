"""Budget thresholds: the shares of a cap whose crossing Wattfare announces (`budget.threshold`, alert emails).

A connection's counters remember the highest threshold already announced in their window (`alerted`), so each is
announced at most once a month however many requests cross it at once: the settle that moves `spent` past it
decides, against counters it has locked. A cap lowered below what was spent is announced by the next settle.
"""

from __future__ import annotations

__all__ = ["ALERT_CHOICES", "THRESHOLDS", "thresholds_crossed"]

# Percent of the cap, in the order they are reached.
THRESHOLDS: tuple[int, ...] = (50, 80, 100)
# What a member may choose for their own email about one connection (None: no email).
ALERT_CHOICES: tuple[int, ...] = (80, 100)


def thresholds_crossed(spent: int, cap: int, alerted: int) -> tuple[int, ...]:
    """The thresholds `spent` has reached on `cap` that are above `alerted` (the highest announced so far).

    Args:
        spent: Settled spend in the window, nano-USD.
        cap: The connection's cap, nano-USD; a cap of 0 admits nothing and announces nothing.
        alerted: The highest threshold already announced this window (0 for none).

    Returns:
        The newly reached thresholds, lowest first (several when one charge jumps over more than one).
    """
    if cap <= 0:
        return ()
    return tuple(t for t in THRESHOLDS if t > alerted and spent * 100 >= t * cap)
