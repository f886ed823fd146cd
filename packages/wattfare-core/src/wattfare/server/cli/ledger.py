"""`wattfare ledger archive`: keep the ledger from growing for years (billing.ledger_archive has the method)."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import click

from wattfare.metering import nanos_to_usd
from wattfare.server.billing.ledger_archive import (
    ArchiveFile,
    ArchiveReport,
    DryRun,
    archive_ledger,
    latest_archivable,
)
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import success
from wattfare.server.instants import utc_now
from wattfare.server.store import Store
from wattfare.server.store.archive_protocols import ArchiveMismatchError, RollUp
from wattfare.server.store.records import Mode

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class Month(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """A month as YYYY-MM: its first day."""

    name = "YYYY-MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        """The month's first day, or a usage error."""
        if isinstance(value, date):
            return value
        found = _MONTH.fullmatch(str(value).strip())
        if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
            self.fail(f"{value!r} is not a month such as 2026-10", param, ctx)
        return date(int(found[1]), int(found[2]), 1)


def _new_private_file(path: Path) -> BinaryIO:
    """A file that did not exist (never an earlier archive, nor through a link), readable by its owner alone.

    The rows name every app's users and what each spent: not for the other accounts on the machine.
    """
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


class MonthlyProgress:
    """Progress on stderr, a line per app-mode month once it is done: a ledger of years takes minutes."""

    def __init__(self, verb: str) -> None:
        """Say `verb` (archived, would archive) of each month."""
        self._verb = verb
        self._month: tuple[str, str, str] | None = None
        self._rows = 0

    def __call__(self, app_id: str, mode: Mode, day: date, rows: int) -> None:
        """One app-mode day done."""
        month = (app_id, mode, f"{day:%Y-%m}")
        if month != self._month:
            self.finish()
            self._month = month
        self._rows += rows

    def finish(self) -> None:
        """Say the month in progress, if any."""
        if self._month is not None:
            app_id, mode, month = self._month
            click.echo(f"{month} {app_id} ({mode}): {self._verb} {self._rows} rows", err=True)
        self._month, self._rows = None, 0


@click.group()
def ledger() -> None:
    """The ledger of charges: archive the months you no longer need row by row."""


@ledger.command("archive")
@click.option(
    "--before",
    type=Month(),
    required=True,
    help="Archive the rows of the months before this one (YYYY-MM; at latest the current month).",
)
@click.option(
    "--to",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive file to create (gzip, one JSON object a line); it must not exist.",
)
@click.option(
    "--by",
    type=click.Choice(["day", "month"]),
    default="day",
    show_default=True,
    help="What a roll-up row covers: a day keeps every report exact; a month is smaller, and /usage then answers "
    "only whole months before --before.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be archived; write and delete nothing.")
def archive(before: date, target: Path | None, by: RollUp, dry_run: bool) -> None:
    """Write the ledger's rows of the months before --before to a file, then roll them up in place.

    Each day's (or month's) rows of a connection, model and endpoint become one row with their sums and request
    count, so every total (caps, usage reports, charts, the console) reads the same afterwards; the rows
    themselves are in the file. Run it in a quiet hour: a day goes in transactions of 2,000 rows at most.
    """
    now = utc_now()
    if before > latest_archivable(now):
        raise click.BadParameter(
            f"the current month ({latest_archivable(now):%Y-%m}) is still being written; archive months before it",
            param_hint="--before",
        )
    if not dry_run and target is None:
        raise click.UsageError("name the archive file with --to (or count with --dry-run)")
    settings = load_settings()

    progress = MonthlyProgress("would archive" if dry_run else "archived")

    async def run(store: Store) -> ArchiveReport:
        try:
            return await archive_into(store)
        finally:
            progress.finish()

    async def archive_into(store: Store) -> ArchiveReport:
        if dry_run or target is None:
            return await archive_ledger(store, before, DryRun(), dry_run=True, progress=progress)
        try:
            raw = _new_private_file(target)
        except OSError as exc:
            raise click.ClickException(f"cannot create {target}: {exc.strerror or exc}") from None
        with raw:
            sink = ArchiveFile(raw, before, now)
            try:
                return await archive_ledger(store, before, sink, by=by, now=now, progress=progress)
            finally:
                sink.finish()

    try:
        report = with_store(settings, run)
    except ArchiveMismatchError as exc:
        raise click.ClickException(f"stopped, with the rest of that day left for the next run: {exc}") from None
    amount = f"${nanos_to_usd(report.amount).normalize():f}"  # exact, to the nano-dollar
    if dry_run:
        success(f"Would archive {report.rows} rows ({amount}) of {report.days} app-days before {before:%Y-%m}.")
    else:
        success(
            f"Archived {report.rows} rows ({amount}) of {report.days} app-days before {before:%Y-%m} to {target}; "
            f"{report.roll_ups} roll-up rows keep their totals."
        )
