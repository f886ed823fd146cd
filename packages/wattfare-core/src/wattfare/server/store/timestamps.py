"""How both stores write instants: ISO 8601 UTC text with microseconds, which sorts the same in either engine."""

from __future__ import annotations

from datetime import UTC, datetime


def to_text(moment: datetime) -> str:
    """An instant as stored."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """A stored instant."""
    return datetime.fromisoformat(text)
