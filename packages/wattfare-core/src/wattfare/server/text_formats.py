"""Money and dates as pages show them to people (the templates' `usd`, `cents`, `amount` and `date` filters).

The money rules, one for each kind of amount:

- balances and caps (what is available, what an app may spend): whole cents, `$4.99`, rounded *down*, so a
  page never shows more than is there (`cents_text`);
- spend (what requests cost): whole cents from a cent up; below a cent, where the sub-cent amount is the
  point (one chat costs a fraction of a cent), two significant digits, `$0.00043`, never `$0.00` (`usd_text`);
- form fields: the exact plain decimal, `2.5` (`amount_text`);
- a limit someone chose (a grant's dollar cap): cents when it is whole cents, else exactly, `$0.005`, so the
  member reads the very limit they approve (`limit_text`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
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


def moment_text(moment: datetime) -> str:
    """A UTC date and time to the minute, such as `1 Dec 2026, 14:05 UTC`."""
    return f"{date_text(moment)}, {moment:%H:%M} UTC"


def limit_text(nanos: int) -> str:
    """A chosen limit for people: `$0.50`, or every digit when it is finer than a cent (`$0.005`)."""
    if nanos % 10_000_000 == 0:
        return cents_text(nanos)
    return f"${amount_text(nanos)}"


def duration_text(length: timedelta) -> str:
    """A length of time in words, to the minute: `1 hour`, `1 hour 30 minutes`, `1 day`, `45 seconds`."""
    seconds = int(length.total_seconds())
    if seconds < 60:
        return f"{seconds} second" + ("" if seconds == 1 else "s")
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    return " ".join(f"{count} {unit}" + ("" if count == 1 else "s") for count, unit in parts if count)
