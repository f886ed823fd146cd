"""Monthly caps: what a person or an app may set, parsed from decimal text, never through a float."""

from __future__ import annotations

from wattfare.metering.money import usd_to_nanos

MAX_CAP_USD = 1_000_000
"""The largest monthly cap anyone may set: far above any real budget, far below the counters' range."""

MAX_CAP = usd_to_nanos(MAX_CAP_USD)


def cap_from_usd_text(text: str) -> int | None:
    """A monthly cap written in US dollars (`10`, `2.50`) as nano-USD, or None when it is not a valid cap.

    Finer than a nano rounds down (a cap is never raised by rounding). A cap must be more than $0: a $0
    connection would read "Connected" and refuse every request; to stop spending, revoke instead.
    """
    try:
        nanos = usd_to_nanos(text, rounding="down")
    except ValueError:
        return None
    return nanos if 0 < nanos <= MAX_CAP else None
