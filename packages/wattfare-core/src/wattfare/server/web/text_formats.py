"""Money and dates as pages show them to people (the templates' `usd`, `cents`, `amount` and `date` filters).

The money rules, one for each kind of amount:

- balances and caps (what is available, what an app may spend): whole cents, `$4.99`, rounded *down*, so a
  page never shows more than is there (`cents_text`);
- spend (what requests cost): whole cents from a cent up; below a cent, where the sub-cent amount is the
  point (one chat costs a fraction of a cent), two significant digits, `$0.00043`, never `$0.00` (`usd_text`);
- form fields: the exact plain decimal, `2.5` (`amount_text`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from wattfare.metering import nanos_to_usd


def usd_text(nanos: int) -> str:
    """Spend for people: cents when it is at least a cent, else two significant digits (`$0.00043`)."""
    amount = nanos_to_usd(nanos)
    if amount == 0 or abs(amount) >= Decimal("0.01"):
        return f"${amount:,.2f}"
    digits = -amount.adjusted() + 1  # two significant digits
    return f"${amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}".rstrip("0")


def cents_text(nanos: int) -> str:
    """A balance or a cap for people: whole cents, rounded down (`$4.99` of $4.9995 available)."""
    amount = nanos_to_usd(nanos).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    return f"${amount:,.2f}"


def amount_text(nanos: int) -> str:
    """Nano-USD as a plain decimal for a form field (`10`, `2.5`), exact."""
    return f"{nanos_to_usd(nanos).normalize():f}"


def date_text(moment: datetime) -> str:
    """A UTC date such as `1 Dec 2026`."""
    return f"{moment.day} {moment:%b %Y}"
