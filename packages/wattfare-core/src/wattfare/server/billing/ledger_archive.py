"""`wattfare ledger archive`: the ledger's closed months written to a file, then rolled up in place.

The ledger is the source of truth and only grows. To keep it from growing for years, an operator archives the
months they no longer need row by row. Each app-mode's days are taken one at a time, oldest first:

1. the day's request rows are read and appended to the archive file (gzip, one JSON object a line), which is
   flushed to disk before anything is deleted;
2. in one transaction, the rows are checked to be those read (count and sum), one roll-up row per connection,
   window, kind, model, endpoint and day (or month: `--by month`) takes their sums and their request count, and
   the rows are deleted.

So no money moves: every window's sum, and with it every counter, `/usage` report (whose finest grain is a day),
daily chart and console total, reads the same before and after (by month: `/usage` of whole months, and it
refuses a range that starts or ends inside a month rolled up so). A run cut short leaves each day either whole or
rolled up; run again, it goes on where it stopped (a day it wrote to the cut file but did not roll up is written
to the new file again: the two files then share those rows, by `request_id`).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import BinaryIO, Protocol

import orjson

from wattfare.metering import window_containing
from wattfare.server.store.archive_protocols import ArchivedDay, LedgerArchive, RollUp
from wattfare.server.store.records import Mode

FORMAT = "wattfare-ledger-archive"
VERSION = 1


class ArchiveSink(Protocol):
    """Where a day's rows go before they are rolled up."""

    def keep(self, day: ArchivedDay) -> None:
        """Write the day's rows durably: when this returns, they survive a crash."""
        ...


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What an archive run did.

    Attributes:
        days: app-mode days archived.
        rows: request rows written to the file and deleted from the ledger.
        roll_ups: roll-up rows written in their place, or added to (by month, each day of a month adds to its rows).
        amount: the sum of the archived rows' `amount` (nano-USD), which the roll-up rows now carry.
    """

    days: int
    rows: int
    roll_ups: int
    amount: int


class ArchiveFile:
    """A new gzip file of JSON lines: a header, one line per ledger row, a trailer with the count and sum."""

    def __init__(self, raw: BinaryIO, before: date, now: datetime) -> None:
        """Start the archive in `raw`, a file opened for writing that did not exist."""
        self._raw = raw
        self._zip = gzip.GzipFile(fileobj=raw, mode="wb")
        self.rows = 0
        self.amount = 0
        header = {"format": FORMAT, "version": VERSION, "before": before.isoformat(), "writtenAt": now.isoformat()}
        self._zip.write(orjson.dumps(header) + b"\n")

    def keep(self, day: ArchivedDay) -> None:
        """Append the day's rows and flush them through to the disk."""
        self._zip.write(b"".join(orjson.dumps(row) + b"\n" for row in day.rows))
        self.rows += len(day.rows)
        self.amount += day.amount
        self._zip.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()
        os.fsync(self._raw.fileno())

    def finish(self) -> None:
        """Write the trailer (rows and amount: a reader checks the file is whole) and close the file."""
        self._zip.write(orjson.dumps({"rows": self.rows, "amount": self.amount}) + b"\n")
        self._zip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())


class DryRun:
    """A sink that keeps nothing: `--dry-run` counts what an archive would take."""

    def keep(self, day: ArchivedDay) -> None:
        """Keep nothing."""


def latest_archivable(now: datetime) -> date:
    """The latest `before` an archive may take: the current month's first day (its rows still change)."""
    return window_containing(now).start.date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def archive_ledger(
    store: LedgerArchive,
    before: date,
    sink: ArchiveSink,
    *,
    by: RollUp = "day",
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str, Mode, date, int], None] | None = None,
) -> ArchiveReport:
    """Archive every request row written before `before` (a day no later than `latest_archivable`).

    `by`: what a roll-up row covers (`archive_protocols.RollUp`); `now`: when the run is recorded as started;
    `progress`: told of each app-mode day done (app, mode, day, rows), as it is done.
    """
    end = _midnight(before)
    if not dry_run:
        await store.record_ledger_archive(before, by, now or datetime.now(UTC))
    days = rows = roll_ups = amount = 0
    for app_id, mode in await store.ledger_app_modes():
        found = await store.next_ledger_request(app_id, mode, _midnight(date.min), end)
        while found is not None:
            start = _midnight(found.astimezone(UTC).date())
            day_end = start + timedelta(days=1)
            taken: ArchivedDay = await store.ledger_day(app_id, mode, start, day_end)
            if taken.rows:
                sink.keep(taken)
                if not dry_run:
                    into = start if by == "day" else window_containing(start).start
                    roll_ups += await store.roll_up_ledger_day(app_id, mode, start, day_end, taken, into)
                days, rows, amount = days + 1, rows + len(taken.rows), amount + taken.amount
                if progress is not None:
                    progress(app_id, mode, start.date(), len(taken.rows))
            found = await store.next_ledger_request(app_id, mode, day_end, end)
    return ArchiveReport(days, rows, roll_ups, amount)
