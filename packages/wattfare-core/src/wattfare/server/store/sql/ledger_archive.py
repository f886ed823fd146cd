"""The ledger's retention in SQL: a day's request rows read out, then replaced by their roll-up rows."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from wattfare.server.store.archive_protocols import ROLLED_UP, ArchivedDay, ArchiveMismatchError, RollUp
from wattfare.server.store.records import Mode
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import per_dialect, portable
from wattfare.server.store.timestamps import from_text, to_text

COLUMNS = (
    "seq",
    "request_id",
    "connection_id",
    "app_id",
    "mode",
    "app_user_id",
    "window_key",
    "kind",
    "model",
    "endpoint",
    "amount",
    "absorbed",
    "prompt_tokens",
    "completion_tokens",
    "requests",
    "created_at",
)
# A day of one app-mode: a range of `ledger_by_app_time`. Roll-up rows of the day, left by an earlier archive, are
# in the range too, but are never taken again.
_OF_THE_DAY = (
    f"WHERE app_id = ? AND mode = ? AND created_at >= ? AND created_at < ? AND request_id NOT LIKE '{ROLLED_UP}%'"
)
_APP_MODES = portable("SELECT DISTINCT app_id, mode FROM connections ORDER BY app_id, mode")
# The archive jumps from one day with request rows to the next: the roll-up rows of days archived before are
# walked past once per run, not read day by day.
_NEXT = portable(f"SELECT MIN(created_at) FROM ledger {_OF_THE_DAY}")
_DAY_ROWS = portable(f"SELECT {', '.join(COLUMNS)} FROM ledger {_OF_THE_DAY} ORDER BY seq")
# One roll-up row per connection, window, kind, model and endpoint of the day, dated at the start of the day or of its
# month (`into`). Its id is a digest of the group and that instant (as short as a request's id: its unique index
# is the ledger's), so the days of a month rolled up by month fold into the same rows, and a day archived again
# (a row a clock behind wrote late) adds to them instead of adding rows.
_GROUP = ("connection_id", "app_id", "mode", "app_user_id", "window_key", "kind", "model", "endpoint")
_SUMMED = ("amount", "absorbed", "prompt_tokens", "completion_tokens", "requests")
_UPSERT = portable(
    f"INSERT INTO ledger (request_id, {', '.join(_GROUP)}, {', '.join(_SUMMED)}, created_at) "
    f"VALUES ({', '.join('?' * (len(_GROUP) + len(_SUMMED) + 2))}) ON CONFLICT (request_id) DO UPDATE SET "
    f"{', '.join(f'{column} = ledger.{column} + excluded.{column}' for column in _SUMMED)}"
)
# Exactly the rows read, by their `seq`: a row written into the day later (a clock behind) stays for the next run.
_DELETE_TAKEN = per_dialect(
    sqlite="DELETE FROM ledger WHERE seq IN (SELECT value FROM json_each(?))",
    postgres="DELETE FROM ledger WHERE seq IN (SELECT value::bigint FROM json_array_elements_text(?::json))",
)
_RECORD = portable(
    "INSERT INTO ledger_archives (started_at, archived_before, rolled_up_by) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
_BY_MONTH_BEFORE = portable("SELECT MAX(archived_before) FROM ledger_archives WHERE rolled_up_by = 'month'")


def rolled_up_id(into: str, group: tuple[str, ...]) -> str:
    """The id of the roll-up row of `group` dated `into`: 96 bits of a digest, after `ROLLED_UP`."""
    return ROLLED_UP + hashlib.sha256("\x1f".join((into, *group)).encode()).hexdigest()[:24]


def roll_ups(rows: list[dict[str, str | int]], into: str) -> list[tuple[str | int, ...]]:
    """The roll-up rows of `rows` dated `into`, as `_UPSERT`'s parameters: integer sums, exact."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        sums = groups.setdefault(tuple(str(row[column]) for column in _GROUP), [0] * len(_SUMMED))
        for index, column in enumerate(_SUMMED):
            sums[index] += int(row[column])
    return [(rolled_up_id(into, group), *group, *sums, into) for group, sums in groups.items()]


async def _roll_up(db: Executor, taken: ArchivedDay, into: str, where: str) -> None:
    deleted = await db.run(_DELETE_TAKEN, json.dumps([int(row["seq"]) for row in taken.rows]))
    if deleted != len(taken.rows):  # another run took some first: undone, so nothing is counted twice
        raise ArchiveMismatchError(
            f"{len(taken.rows) - deleted} of the {len(taken.rows)} rows of {where} were archived by another run "
            "meanwhile"
        )
    await db.run_many(_UPSERT, roll_ups(taken.rows, into))


# A day's rows are rolled up in transactions of at most this many: each moves its rows' sums into the roll-up rows at
# once (the upsert adds), so every total reads the same between them, and no transaction holds SQLite's write lock,
# which a serving process waits for with its event loop stopped, for long (see `roll_up_ledger_day`).
ROWS_PER_TRANSACTION = 2_000


def _chunks(taken: ArchivedDay) -> list[ArchivedDay]:
    rows = taken.rows
    parts = [rows[index : index + ROWS_PER_TRANSACTION] for index in range(0, len(rows), ROWS_PER_TRANSACTION)]
    return [ArchivedDay(part, sum(int(row["amount"]) for row in part)) for part in parts]


class SqlLedgerArchive(SqlConcern):
    """`archive_protocols.LedgerArchive` over an engine."""

    async def ledger_app_modes(self) -> list[tuple[str, Mode]]:
        """Every (app, mode) that has connections, and so may have ledger rows."""
        return [(row[0], row[1]) for row in await self._engine.all(_APP_MODES)]

    async def next_ledger_request(self, app_id: str, mode: Mode, since: datetime, before: datetime) -> datetime | None:
        """When the app-mode's first request row (not a roll-up) in [since, before) was written, None without one."""
        row = await self._engine.one(_NEXT, app_id, mode, to_text(since), to_text(before))
        return None if row is None or row[0] is None else from_text(row[0])

    async def ledger_day(self, app_id: str, mode: Mode, start: datetime, end: datetime) -> ArchivedDay:
        """The app-mode's request rows written in [start, end) (roll-up rows left out), in the order written."""
        rows = await self._engine.all(_DAY_ROWS, app_id, mode, to_text(start), to_text(end))
        # PostgreSQL's BIGINTs come as ints, SQLite's too; nothing here is a float.
        taken: list[dict[str, str | int]] = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        return ArchivedDay(taken, sum(int(row[COLUMNS.index("amount")]) for row in rows))

    async def archived_by_month_before(self) -> date | None:
        """The first day after every month an archive rolled up by month (None if none ever did)."""
        row = await self._engine.one(_BY_MONTH_BEFORE)
        return None if row is None or row[0] is None else date.fromisoformat(row[0])

    async def record_ledger_archive(self, before: date, by: RollUp, now: datetime) -> None:
        """Note that an archive of the rows before `before`, rolled up by `by`, starts now."""
        await self._engine.write(lambda db: db.run(_RECORD, to_text(now), before.isoformat(), by))

    async def roll_up_ledger_day(
        self, app_id: str, mode: Mode, start: datetime, end: datetime, taken: ArchivedDay, into: datetime
    ) -> int:
        """Replace the request rows of [start, end) by roll-up rows dated `into`, `ROWS_PER_TRANSACTION` at a time.

        One transaction for a whole busy day held SQLite's write lock for as long as its rows took: 243 ms for a day
        of 50,000 (the longest of 2,000 rows: 9 ms), and a server on the same file waits for that lock with its event
        loop stopped.
        """
        where = f"{app_id} ({mode}) on {start.date().isoformat()}"
        day = to_text(into)
        for chunk in _chunks(taken):
            await self._engine.write(lambda db, chunk=chunk: _roll_up(db, chunk, day, where))
        return len(roll_ups(taken.rows, day))
