"""The ledger's retention: a closed day's rows handed out for safekeeping, then folded into roll-up rows.

The ledger grows by a row per request (about 460 bytes with its indexes on SQLite, benchmarks/ledger_scale.py),
for as long as the service runs. `wattfare ledger archive` (billing.ledger_archive) writes the rows of closed
months to a file, then leaves in their place one roll-up row per connection, window, kind, model, endpoint and
day (or month), which carries their sums and how many requests it stands for (`requests`). Every reader of the
ledger sums it (usage reports, the daily chart, the console, `ledger_total`, `rebuild_counters`), and none
reads a finer time than a day, so each of them answers the same after an archive by day as before it. An archive
by month keeps every month's totals; `GET /usage` then refuses a range that starts or ends inside such a month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from wattfare.server.store.records import Mode

# A roll-up row's `request_id` starts so; a request's id is `req_…` (access.keys.new_request_id), never this.
ROLLED_UP = "rolled:"
# What one roll-up row covers: a day keeps every reader exact (none reads finer than a day); a month folds a
# sparse ledger much further (8 requests per user a month over 7 models: 0.40 roll-up rows per row against 0.81,
# benchmarks/ledger_archive_scale.py), and `/usage` then answers only whole months of it.
RollUp = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class ArchivedDay:
    """One app-mode's day of the ledger as the archive took it.

    Attributes:
        rows: the day's request rows (roll-up rows are never archived again), each a mapping of column to value.
        amount: the sum of their `amount` (nano-USD).
    """

    rows: list[dict[str, str | int]]
    amount: int


class ArchiveMismatchError(Exception):
    """Rows read for a roll-up were gone when it ran (another archive run took them): they were left as they were."""


class LedgerArchive(Protocol):
    """What `wattfare ledger archive` needs of the store."""

    async def ledger_app_modes(self) -> list[tuple[str, Mode]]:
        """Every (app, mode) that has connections, and so may have ledger rows."""
        ...

    async def next_ledger_request(self, app_id: str, mode: Mode, since: datetime, before: datetime) -> datetime | None:
        """When the app-mode's first request row (not a roll-up) in [since, before) was written, None without one."""
        ...

    async def ledger_day(self, app_id: str, mode: Mode, start: datetime, end: datetime) -> ArchivedDay:
        """The app-mode's request rows written in [start, end) (roll-up rows left out), in the order written."""
        ...

    async def archived_by_month_before(self) -> date | None:
        """The first day after every month an archive rolled up by month (None if none ever did)."""
        ...

    async def record_ledger_archive(self, before: date, by: RollUp, now: datetime) -> None:
        """Note that an archive of the rows before `before`, rolled up by `by`, starts now."""
        ...

    async def roll_up_ledger_day(
        self, app_id: str, mode: Mode, start: datetime, end: datetime, taken: ArchivedDay, into: datetime
    ) -> int:
        """Replace the request rows of [start, end) by roll-up rows dated `into`, in transactions of a few thousand.

        Each transaction moves its rows' sums into the roll-up rows at once, so every total reads the same before,
        between and after them. `into` is the day's start or its month's; the count returned is of roll-up rows
        written or added to.

        Raises:
            ArchiveMismatchError: some of the rows one transaction read are gone (another run archived them): that
                transaction changed nothing, and the day's rows not yet rolled up are left for the next run.
        """
        ...
