"""`wattfare ledger archive` below the command: closed days written out, rolled up, and every total unchanged.

Run on SQLite and PostgreSQL alike. Three months of requests over two apps, both modes, a member's connection,
several models, both endpoints and expired holds are archived up to the current month; every reader of the
ledger (usage reports per day and per month, one user and the whole app in pages, the member's daily chart, the
console's month, each window's ledger total, the counters rebuilt from it) must answer exactly as before.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from wattfare.metering import window_containing
from wattfare.server.billing.ledger_archive import ArchiveReport, archive_ledger
from wattfare.server.store import Store, open_store
from wattfare.server.store.archive_protocols import ArchivedDay, ArchiveMismatchError, RollUp
from wattfare.server.store.records import Endpoint, Mode, NewHold, Settlement
from wattfare.server.store.sql import ledger_archive as sql_ledger_archive

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FIRST_DAY = date(2026, 9, 1)
CURRENT_MONTH = date(2026, 11, 1)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
CAP = 10**15
MEMBER = "mem_ada"
# (connection id, app, mode, app user): the member's connection is app_a/live/"ada".
CONNECTIONS: tuple[tuple[str, str, Mode, str], ...] = (
    ("c1", "app_a", "test", "u1"),
    ("c2", "app_a", "test", "u2"),
    ("c3", "app_a", "live", "u1"),
    ("c4", "app_b", "test", "u1"),
    ("c5", "app_a", "live", "ada"),
)


class KeptRows:
    """An archive sink in memory: every day it was handed, in order."""

    def __init__(self) -> None:
        self.days: list[ArchivedDay] = []

    def keep(self, day: ArchivedDay) -> None:
        self.days.append(day)

    @property
    def rows(self) -> list[dict[str, str | int]]:
        return [row for day in self.days for row in day.rows]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", CAP, NOW)
    await store.create_app("app_b", "B", CAP, NOW)
    assert await store.create_member(MEMBER, "ada@example.com", "not-a-real-hash", NOW) is not None
    for connection_id, app_id, mode, user in CONNECTIONS:
        if user == "ada":
            await store.approve_member_connection(connection_id, app_id, user, mode, CAP, MEMBER, NOW)
        else:
            await store.approve_connection(connection_id, app_id, user, mode, CAP, NOW)
    try:
        yield store
    finally:
        await store.close()


async def request(
    store: Store,
    connection_id: str,
    at: datetime,
    cost: int,
    *,
    model: str = "m",
    endpoint: Endpoint = "chat.completions",
) -> str:
    """One request reserved and settled at `at` (an expired hold when `cost` is odd, as the sweep books it)."""
    hold = NewHold(
        f"req_{uuid.uuid4().hex}",
        connection_id,
        window_containing(at).key,
        cost,
        model,
        at,
        at + timedelta(minutes=5),
        endpoint,
    )
    assert await store.try_reserve(hold)
    kind = "expired" if cost % 2 else "charge"
    await store.settle(Settlement(hold.id, cost, prompt_tokens=cost // 3, completion_tokens=cost // 7, kind=kind), at)
    return hold.id


async def seed(store: Store, requests: int = 240, *, seed_of: int = 7) -> None:
    """Requests at random instants from September to now, over every connection, two models and both endpoints."""
    draw = random.Random(seed_of)
    span = (NOW - datetime(2026, 9, 1, tzinfo=UTC)).total_seconds()
    for _ in range(requests):
        at = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(seconds=draw.uniform(0, span))
        endpoint: Endpoint = draw.choice(("chat.completions", "embeddings"))
        model = draw.choice(("m-small", "m-large")) if endpoint == "chat.completions" else "e"
        await request(store, draw.choice(CONNECTIONS)[0], at, draw.randrange(1, 10_000), model=model, endpoint=endpoint)
    # The edges of a day: its first microsecond and its last.
    await request(store, "c1", datetime(2026, 10, 5, tzinfo=UTC), 40)
    await request(store, "c1", datetime(2026, 10, 5, 23, 59, 59, 999_999, tzinfo=UTC), 60)


async def everything_read(store: Store) -> dict[str, Any]:
    """What every reader of the ledger answers, for each day and month since September."""
    seen: dict[str, Any] = {}
    app_modes: list[tuple[str, Mode]] = [("app_a", "test"), ("app_a", "live"), ("app_b", "test")]
    day = FIRST_DAY
    while day <= NOW.date():
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for app_id, mode in app_modes:
            seen[f"day {day} {app_id} {mode}"] = await store.usage(app_id, mode, None, start, start + timedelta(1))
        day += timedelta(days=1)
    for month in ("2026-09", "2026-10", "2026-11"):
        window = window_containing(datetime.fromisoformat(f"{month}-15T00:00:00+00:00"))
        for app_id, mode in app_modes:
            seen[f"month {month} {app_id} {mode}"] = await store.usage(app_id, mode, None, window.start, window.end)
            seen[f"page {month} {app_id} {mode}"] = await store.usage_page(
                app_id, mode, window.start, window.end, after="", users=1
            )
            seen[f"console {month} {app_id} {mode}"] = await store.app_month(
                app_id, mode, window.key, top=10, named=["u2"]
            )
        for connection_id, app_id, mode, user in CONNECTIONS:
            seen[f"user {month} {connection_id}"] = await store.usage(app_id, mode, user, window.start, window.end)
            seen[f"total {month} {connection_id}"] = await store.ledger_total(connection_id, window.key)
            seen[f"budget {month} {connection_id}"] = await store.budget(app_id, mode, user, window.key)
        seen[f"chart {month}"] = await store.member_daily_spend(MEMBER, window.start, window.end)
    seen["all time"] = await store.usage("app_a", "test", None, LONG_AGO, NOW)
    return seen


async def archive(store: Store, before: date = CURRENT_MONTH, by: RollUp = "day") -> tuple[ArchiveReport, KeptRows]:
    kept = KeptRows()
    return await archive_ledger(store, before, kept, by=by, now=NOW), kept


def whole_months(seen: dict[str, Any]) -> dict[str, Any]:
    """What the readers answer of whole months and windows (all but the day-by-day usage and daily charts)."""
    return {key: value for key, value in seen.items() if not key.startswith(("day ", "chart "))}


async def test_an_archive_takes_every_row_before_the_month_and_every_reader_answers_as_before(store: Store) -> None:
    await seed(store)
    before = await everything_read(store)
    requests_before = sum(row.requests for key, rows in before.items() if key.startswith("month") for row in rows)

    report, kept = await archive(store)

    # The file got each request row before November once, and nothing else.
    ids = [row["request_id"] for row in kept.rows]
    assert len(ids) == len(set(ids)) == report.rows > 0
    assert all(str(row["request_id"]).startswith("req_") for row in kept.rows)
    assert all(str(row["created_at"]) < "2026-11-01" for row in kept.rows)
    assert report.amount == sum(int(str(row["amount"])) for row in kept.rows)
    assert report.days == len(kept.days)
    assert 0 < report.roll_ups < report.rows
    # And every reader answers as before, to the nano-dollar and the request.
    assert await everything_read(store) == before
    assert await store.rebuild_counters() == 0
    october = await store.usage("app_a", "test", None, datetime(2026, 10, 1, tzinfo=UTC), NOVEMBER)
    assert sum(row.requests for row in october) == sum(row.requests for row in before["month 2026-10 app_a test"])
    assert requests_before == sum(
        row.requests for key, rows in before.items() if key.startswith("month") for row in rows
    )


async def test_what_is_left_before_the_month_is_roll_ups_and_november_is_untouched(store: Store) -> None:
    await seed(store)
    november_before = await store.usage("app_a", "test", None, NOVEMBER, NOW)
    _, kept = await archive(store)

    # Nothing of November was taken: the rows still there are request rows, one per request.
    assert not [row for row in kept.rows if str(row["created_at"]) >= "2026-11-01"]
    november_after = await store.usage("app_a", "test", None, NOVEMBER, NOW)
    assert november_after == november_before
    day_rows = await store.ledger_day("app_a", "test", NOVEMBER, NOW)
    assert day_rows.rows
    assert all(str(row["request_id"]).startswith("req_") for row in day_rows.rows)
    # Before November, only roll-ups: the archive's own reader finds no request row left.
    app_modes: list[tuple[str, Mode]] = [("app_a", "test"), ("app_a", "live"), ("app_b", "test")]
    for app_id, mode in app_modes:
        assert await store.next_ledger_request(app_id, mode, LONG_AGO, NOW) is not None
        assert await store.next_ledger_request(app_id, mode, LONG_AGO, NOVEMBER) is None


async def test_a_second_run_takes_nothing_and_changes_nothing(store: Store) -> None:
    await seed(store)
    await archive(store)
    after_first = await everything_read(store)

    report, kept = await archive(store)

    assert (report.rows, report.days, report.roll_ups, report.amount, kept.rows) == (0, 0, 0, 0, [])
    assert await everything_read(store) == after_first


async def test_an_earlier_horizon_then_a_later_one_add_up_to_one_run(store: Store) -> None:
    await seed(store)
    before = await everything_read(store)

    first, _ = await archive(store, date(2026, 10, 1))
    second, _ = await archive(store, CURRENT_MONTH)

    assert first.rows > 0
    assert second.rows > 0
    assert await everything_read(store) == before


async def test_rows_that_reach_a_rolled_up_day_later_are_added_to_its_roll_up_rows(store: Store) -> None:
    """A day rolled up, then a row dated in it (another instance's clock days behind): a re-run folds it in."""
    day = datetime(2026, 10, 5, 9, tzinfo=UTC)
    await request(store, "c1", day, 100)
    await request(store, "c1", day + timedelta(hours=1), 200)
    first, _ = await archive(store)
    await request(store, "c1", day + timedelta(hours=2), 400)

    second, kept = await archive(store)

    assert (first.rows, first.roll_ups, second.rows, second.roll_ups) == (2, 1, 1, 1)
    [row] = await store.usage(
        "app_a", "test", "u1", datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC)
    )
    assert (row.requests, row.cost) == (3, 700)
    assert [r["amount"] for r in kept.rows] == [400]
    assert await store.ledger_total("c1", "2026-10") == 700


async def test_a_row_written_into_a_day_while_it_is_archived_stays_for_the_next_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in (2, 3, 4):
        await request(store, "c1", datetime(2026, 9, day, 10, tzinfo=UTC), 100)
    roll_up = store.roll_up_ledger_day

    async def after_a_late_row(
        app_id: str, mode: Mode, start: datetime, end: datetime, taken: ArchivedDay, into: datetime
    ) -> int:
        """While 3 September is written out, another instance (its clock days behind) books a row dated in it."""
        if start.date() == date(2026, 9, 3):
            await request(store, "c1", datetime(2026, 9, 3, 11, tzinfo=UTC), 50)
        return await roll_up(app_id, mode, start, end, taken, into)

    monkeypatch.setattr(store, "roll_up_ledger_day", after_a_late_row)
    first, kept = await archive(store)
    monkeypatch.undo()

    # The three rows read were rolled up; the late one, never read, is neither in the file nor lost.
    assert (first.rows, first.amount) == (3, 300)
    assert [row["amount"] for row in kept.rows] == [100, 100, 100]
    assert await store.ledger_total("c1", "2026-09") == 350
    third = await store.ledger_day("app_a", "test", datetime(2026, 9, 3, tzinfo=UTC), datetime(2026, 9, 4, tzinfo=UTC))
    assert [row["amount"] for row in third.rows] == [50]
    second, _ = await archive(store)
    assert (second.rows, second.amount) == (1, 50)
    assert await store.ledger_total("c1", "2026-09") == 350
    assert await store.next_ledger_request("app_a", "test", LONG_AGO, NOW) is None


async def test_two_runs_at_once_never_count_a_row_twice(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for day in (2, 3):
        await request(store, "c1", datetime(2026, 9, day, 10, tzinfo=UTC), 100)
    roll_up = store.roll_up_ledger_day

    async def another_run_got_there_first(
        app_id: str, mode: Mode, start: datetime, end: datetime, taken: ArchivedDay, into: datetime
    ) -> int:
        """The other run read 3 September too, and rolled it up just before this one."""
        if start.date() == date(2026, 9, 3):
            await roll_up(app_id, mode, start, end, taken, into)
        return await roll_up(app_id, mode, start, end, taken, into)

    monkeypatch.setattr(store, "roll_up_ledger_day", another_run_got_there_first)
    with pytest.raises(ArchiveMismatchError, match="1 of the 1 rows of app_a \\(test\\) on 2026-09-03 were archived"):
        await archive(store)
    monkeypatch.undo()

    assert await store.ledger_total("c1", "2026-09") == 200
    assert await store.rebuild_counters() == 0
    [row] = await store.usage(
        "app_a", "test", "u1", datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
    )
    assert (row.requests, row.cost) == (2, 200)


async def test_by_month_every_whole_month_and_window_reads_as_before(store: Store) -> None:
    await seed(store)
    before = await everything_read(store)
    assert await store.archived_by_month_before() is None

    by_month, kept = await archive(store, by="month")

    assert whole_months(await everything_read(store)) == whole_months(before)
    assert await store.rebuild_counters() == 0
    assert await store.archived_by_month_before() == CURRENT_MONTH
    # One roll-up row per connection, window, kind, model and endpoint: October's rows all dated its first instant.
    october = await store.ledger_day(
        "app_a", "test", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    )
    assert october.rows == []  # roll-up rows are not request rows
    first_of_october = await store.usage(
        "app_a", "test", None, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    )
    assert sum(row.requests for row in first_of_october) == sum(
        row.requests for row in before["month 2026-10 app_a test"]
    )
    assert by_month.rows == len(kept.rows) > 0


async def test_an_archive_by_day_is_not_one_by_month(store: Store) -> None:
    await seed(store, requests=20)
    await archive(store, by="day")
    assert await store.archived_by_month_before() is None
    await archive(store, date(2026, 10, 1), by="month")
    assert await store.archived_by_month_before() == date(2026, 10, 1)


async def test_a_busy_day_is_rolled_up_a_few_rows_at_a_time_and_every_total_holds_between_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's rows go in transactions of `ROWS_PER_TRANSACTION`, never in one that holds SQLite's lock for long."""
    for index in range(25):
        await request(store, ("c1", "c2")[index % 2], datetime(2026, 9, 3, 1, index, tzinfo=UTC), 10 + index)
    before = await everything_read(store)
    monkeypatch.setattr(sql_ledger_archive, "ROWS_PER_TRANSACTION", 4)
    real_roll_up = sql_ledger_archive._roll_up  # pyright: ignore[reportPrivateUsage]
    transactions: list[int] = []

    async def counted(db: Any, taken: ArchivedDay, into: str, where: str) -> None:
        transactions.append(len(taken.rows))
        if len(transactions) == 3:  # the third transaction finds its rows taken by another run
            raise ArchiveMismatchError("another run")
        await real_roll_up(db, taken, into, where)

    monkeypatch.setattr(sql_ledger_archive, "_roll_up", counted)
    with pytest.raises(ArchiveMismatchError):
        await archive(store)
    # Two transactions of 4 rows went through; the books are whole with 8 rows rolled up and 17 still rows.
    assert transactions == [4, 4, 4]
    assert await everything_read(store) == before
    assert await store.rebuild_counters() == 0
    left = await store.ledger_day("app_a", "test", datetime(2026, 9, 3, tzinfo=UTC), datetime(2026, 9, 4, tzinfo=UTC))
    assert len(left.rows) == 17

    # The next run takes the rest, a few rows at a time again.
    async def counted_through(db: Any, taken: ArchivedDay, into: str, where: str) -> None:
        transactions.append(len(taken.rows))
        await real_roll_up(db, taken, into, where)

    transactions.clear()
    monkeypatch.setattr(sql_ledger_archive, "_roll_up", counted_through)
    report, kept = await archive(store)
    assert transactions == [4, 4, 4, 4, 1]
    assert (report.rows, report.roll_ups, len(kept.rows)) == (17, 2, 17)  # one roll-up row per connection of the day
    assert await everything_read(store) == before
    assert await store.rebuild_counters() == 0
