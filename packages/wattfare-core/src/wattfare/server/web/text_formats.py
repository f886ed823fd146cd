"""Money and dates as pages show them to people (the templates' `usd`, `amount` and `date` filters)."""

from __future__ import annotations

from datetime import datetime

from wattfare.metering import nanos_to_usd


def usd_text(nanos: int) -> str:
    """Nano-USD for people: cents when it is at least a cent, else enough decimals to show it."""
    amount = nanos_to_usd(nanos)
    if amount == 0 or abs(amount) >= 1 / 100:
        return f"${amount:,.2f}"
    return f"${amount:.9f}".rstrip("0")


def amount_text(nanos: int) -> str:
    """Nano-USD as a plain decimal for a form field (`10`, `2.5`), exact."""
    return f"{nanos_to_usd(nanos).normalize():f}"


def date_text(moment: datetime) -> str:
    """A UTC date such as `1 Dec 2026`."""
    return f"{moment.day} {moment:%b %Y}"
