"""Budget windows: the UTC calendar month a cap applies to.

Caps are monthly and reset at midnight UTC on the first of the month, as OpenRouter's ``monthly``
limits do, so every instance and every timezone agrees on which window a request belongs to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Window", "window_containing", "window_of_key"]


@dataclass(frozen=True, slots=True)
class Window:
    """One budget window, the half-open interval ``[start, end)`` of a UTC calendar month.

    Attributes:
        start: Midnight UTC on the first day of the month.
        end: Midnight UTC on the first day of the next month (when the cap resets).
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.utcoffset() != timedelta(0):
                raise ValueError(f"window bounds must be timezone-aware UTC: {moment!r}")
        if self.start >= self.end:
            raise ValueError(f"a window must start before it ends: {self.start} >= {self.end}")

    @property
    def key(self) -> str:
        """The window's stable name, ``"YYYY-MM"`` of its month (for storage keys)."""
        return f"{self.start.year:04d}-{self.start.month:02d}"

    def contains(self, moment: datetime) -> bool:
        """Whether an instant falls in this window.

        Args:
            moment: A timezone-aware instant.

        Returns:
            True when ``start <= moment < end``.

        Raises:
            ValueError: ``moment`` is naive.
        """
        return self.start <= _aware(moment) < self.end


def window_containing(moment: datetime) -> Window:
    """The budget window an instant belongs to.

    Args:
        moment: A timezone-aware instant, in any timezone (it is converted to UTC).

    Returns:
        The UTC calendar month containing ``moment``.

    Raises:
        ValueError: ``moment`` is naive: a clock reading without a zone is no instant at all.
    """
    utc = _aware(moment).astimezone(UTC)
    return _month(utc.year, utc.month)


def window_of_key(key: str) -> Window:
    """The window a `Window.key` names (``"YYYY-MM"``).

    Raises:
        ValueError: ``key`` is not a month's key.
    """
    year, _, month = key.partition("-")
    if len(year) != 4 or len(month) != 2 or not (year + month).isdigit() or not 1 <= int(month) <= 12:
        raise ValueError(f"not a window key: {key!r}")
    return _month(int(year), int(month))


@functools.lru_cache(maxsize=64)
def _month(year: int, month: int) -> Window:
    """The window of one month; cached, as every request of a month asks for the same one."""
    start = datetime(year, month, 1, tzinfo=UTC)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Window(start, datetime(next_year, next_month, 1, tzinfo=UTC))


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a naive datetime is ambiguous; give a timezone-aware one: {moment!r}")
    return moment
