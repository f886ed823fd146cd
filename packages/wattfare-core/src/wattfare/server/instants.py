"""Instants as Wattfare writes them for people and programs: ISO 8601 in UTC, to the second, with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def utc_text(moment: datetime) -> str:
    """`2026-12-04T17:47:59Z` (an aware instant in any zone is shown in UTC).

    `isoformat`, not `strftime("%Y")`: the platform's strftime does not zero-pad years before 1000.
    """
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
