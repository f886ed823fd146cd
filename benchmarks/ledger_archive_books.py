"""The books of `ledger_archive_scale.py`: what no archive may change, computed in SQL before and after.

The ledger's sums per connection-window and at the roll-up's own grain, and the counters; and their comparison.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from ledger_archive_side import Side

from wattfare.server.store.archive_protocols import RollUp

# The books, as every reader of the ledger sees them: sums per connection-window (caps, counters), and per the
# roll-up's own grain, a connection-window's kind, model and endpoint on one day (usage reports, daily charts).
_SUMS = "SUM(amount), SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(absorbed)"
_BY_WINDOW = (
    f"SELECT connection_id, window_key, {_SUMS} FROM ledger GROUP BY connection_id, window_key "
    "ORDER BY connection_id, window_key"
)


def _by_grain(by: RollUp) -> str:
    """The sums at the roll-up's grain: a day's (YYYY-MM-DD) or, archived `--by month`, a month's (YYYY-MM)."""
    grain = f"connection_id, window_key, kind, model, endpoint, SUBSTR(created_at, 1, {10 if by == 'day' else 7})"
    return f"SELECT {grain}, {_SUMS} FROM ledger GROUP BY {grain} ORDER BY {grain}"


_COUNTERS = "SELECT connection_id, window_key, spent FROM counters"


@dataclass(frozen=True)
class Books:
    """What no archive may change: the ledger's sums at two grains, and the counters."""

    windows: dict[tuple[str, str], tuple[int, ...]]
    day_groups: int
    day_digest: str
    counters: dict[tuple[str, str], int]
    seconds: float

    def counter_mismatches(self) -> int:
        """Counters whose `spent` is not their connection-window's ledger sum (a window without rows sums to 0)."""
        keys = self.windows.keys() | self.counters.keys()
        return sum(1 for key in keys if self.counters.get(key, 0) != self.windows.get(key, (0,))[0])

    def summary(self) -> dict[str, Any]:
        sums = [sum(values[index] for values in self.windows.values()) for index in range(5)]
        return {
            "connection_windows": len(self.windows),
            "amount_nanos": sums[0],
            "requests": sums[1],
            "prompt_tokens": sums[2],
            "completion_tokens": sums[3],
            "absorbed_nanos": sums[4],
            "day_groups": self.day_groups,
            "day_digest": self.day_digest,
            "counters": len(self.counters),
            "counter_mismatches": self.counter_mismatches(),
            "seconds": round(self.seconds, 2),
        }


def books(side: Side, by: RollUp) -> Books:
    """The books, computed in SQL (PostgreSQL's sums are NUMERIC: made ints, so both engines hash alike)."""
    started = time.perf_counter()
    windows = {(row[0], row[1]): tuple(int(value) for value in row[2:]) for row in side.rows(_BY_WINDOW)}
    digest = hashlib.sha256()
    groups = 0
    for row in side.rows(_by_grain(by)):
        digest.update(repr((*row[:6], *(int(value) for value in row[6:]))).encode())
        groups += 1
    counters = {(row[0], row[1]): int(row[2]) for row in side.rows(_COUNTERS)}
    return Books(windows, groups, digest.hexdigest(), counters, time.perf_counter() - started)


def compare_books(before: Books, after: Books) -> dict[str, Any]:
    return {
        "books_equal": before.windows == after.windows,
        "day_grain_equal": before.day_digest == after.day_digest and before.day_groups == after.day_groups,
        "counters_unchanged": before.counters == after.counters,
        "counters_match_ledger": after.counter_mismatches() == 0,
        "before": before.summary(),
        "after": after.summary(),
    }
