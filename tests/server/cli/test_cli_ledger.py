"""`wattfare ledger archive`: the file it writes, what it leaves in the ledger, and the mistakes it refuses.

The command reads the real clock, so the ledger here is dated relative to today: two closed months and the
current one. The store-level test (tests/server/store/test_ledger_archive.py) checks every reader of the ledger
answers the same afterwards; this one checks the command's file, words and refusals on both engines.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import Wattfare, one_error_line, wattfare_over
from wattfare.metering import window_containing
from wattfare.server.instants import utc_now
from wattfare.server.store import Store
from wattfare.server.store.records import NewHold, Settlement, UsageRow

THIS_MONTH = window_containing(utc_now())
LAST_MONTH = window_containing(THIS_MONTH.start - timedelta(days=1))
TWO_MONTHS_AGO = window_containing(LAST_MONTH.start - timedelta(days=1))
CAP = 10**15
# (when, cost): three requests two months ago, two last month, one this month.
REQUESTS = (
    (TWO_MONTHS_AGO.start + timedelta(days=1, hours=3), 1_000),
    (TWO_MONTHS_AGO.start + timedelta(days=1, hours=9), 2_000),
    (TWO_MONTHS_AGO.start + timedelta(days=20), 4_000),
    (LAST_MONTH.start + timedelta(days=2), 8_000),
    (LAST_MONTH.end - timedelta(microseconds=1), 16_000),
    (THIS_MONTH.start + timedelta(microseconds=1), 32_000),
)


@pytest.fixture
def wattfare(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wattfare:
    wattfare = wattfare_over(database_url, monkeypatch, tmp_path)

    async def seed(store: Store) -> None:
        now = datetime.now(UTC)
        await store.create_app("app_a", "A", CAP, now)
        await store.approve_connection("c1", "app_a", "u1", "test", CAP, now)
        for at, cost in REQUESTS:
            window = window_containing(at)
            hold = NewHold(f"req_{uuid.uuid4().hex}", "c1", window.key, cost, "m", at, at + timedelta(minutes=5))
            assert await store.try_reserve(hold)
            await store.settle(Settlement(hold.id, cost, prompt_tokens=10, completion_tokens=5), at)

    wattfare.store(seed)
    return wattfare


def usage(wattfare: Wattfare) -> list[UsageRow]:
    async def read(store: Store) -> list[UsageRow]:
        rows: list[UsageRow] = []
        for window in (TWO_MONTHS_AGO, LAST_MONTH, THIS_MONTH):
            rows += await store.usage("app_a", "test", "u1", window.start, window.end)
        return rows

    return wattfare.store(read)


def lines_of(archive: Path) -> list[dict[str, object]]:
    with gzip.open(archive, "rt", encoding="utf-8") as text:
        return [json.loads(line) for line in text]


def test_the_archive_file_holds_each_closed_row_between_a_header_and_a_count_and_totals_stay(
    wattfare: Wattfare, tmp_path: Path
) -> None:
    before = usage(wattfare)
    archive = tmp_path / "ledger.jsonl.gz"

    done = wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--to", str(archive))

    assert "Archived 5 rows ($0.000031) of 4 app-days" in done.stdout
    assert done.stderr.splitlines() == [  # progress, a line per app-mode month
        f"{TWO_MONTHS_AGO.key} app_a (test): archived 3 rows",
        f"{LAST_MONTH.key} app_a (test): archived 2 rows",
    ]
    header, *rows, trailer = lines_of(archive)
    assert header["format"] == "wattfare-ledger-archive"
    assert header["version"] == 1
    assert header["before"] == THIS_MONTH.start.date().isoformat()
    assert sorted(int(str(row["amount"])) for row in rows) == [1_000, 2_000, 4_000, 8_000, 16_000]
    assert all(str(row["request_id"]).startswith("req_") for row in rows)
    assert {row["app_user_id"] for row in rows} == {"u1"}
    assert trailer == {"rows": 5, "amount": 31_000}
    assert archive.stat().st_mode & 0o777 == 0o600  # users and their spend: for the operator's eyes only
    assert usage(wattfare) == before
    # Nothing left to take: a second run writes a file with no rows.
    again = tmp_path / "again.jsonl.gz"
    wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--to", str(again))
    assert lines_of(again)[1:] == [{"rows": 0, "amount": 0}]


def test_an_earlier_month_takes_only_what_is_older(wattfare: Wattfare, tmp_path: Path) -> None:
    archive = tmp_path / "older.jsonl.gz"

    wattfare("ledger", "archive", "--before", f"{LAST_MONTH.start:%Y-%m}", "--to", str(archive))

    assert lines_of(archive)[-1] == {"rows": 3, "amount": 7_000}


def test_a_dry_run_counts_and_leaves_the_ledger_and_the_disk_alone(wattfare: Wattfare, tmp_path: Path) -> None:
    before = usage(wattfare)

    counted = wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--dry-run")

    assert "Would archive 5 rows ($0.000031) of 4 app-days" in counted.stdout
    assert usage(wattfare) == before
    assert not list(tmp_path.glob("*.gz"))
    # And the rows are all still there to archive.
    archive = tmp_path / "after-dry-run.jsonl.gz"
    wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--to", str(archive))
    assert lines_of(archive)[-1] == {"rows": 5, "amount": 31_000}


def test_an_existing_file_is_never_written_over(wattfare: Wattfare, tmp_path: Path) -> None:
    archive = tmp_path / "ledger.jsonl.gz"
    archive.write_bytes(b"an earlier archive")
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "link.jsonl.gz").symlink_to(elsewhere)  # a link to a file yet to exist is not followed either
    before = usage(wattfare)

    for target in (archive, tmp_path / "link.jsonl.gz"):
        refused = wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--to", str(target), code=1)
        assert "cannot create" in one_error_line(refused)

    assert archive.read_bytes() == b"an earlier archive"
    assert not elsewhere.exists()
    assert usage(wattfare) == before


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (("--before", f"{window_containing(THIS_MONTH.end).start:%Y-%m}", "--dry-run"), "still being written"),
        (("--before", "2026-13", "--dry-run"), "not a month"),
        (("--before", "last year", "--dry-run"), "not a month"),
        (("--before", "2026-10"), "--to"),
        (("--before", "2026-10", "--dry-run", "--by", "week"), "'week' is not one of 'day', 'month'"),
    ],
)
def test_a_month_not_closed_a_malformed_month_or_no_file_is_a_usage_error(
    wattfare: Wattfare, arguments: tuple[str, ...], says: str
) -> None:
    before = usage(wattfare)

    refused = wattfare("ledger", "archive", *arguments, code=2)

    assert says in refused.stderr
    assert "Traceback" not in refused.output
    assert usage(wattfare) == before


def test_by_month_the_months_read_the_same_in_their_totals(wattfare: Wattfare, tmp_path: Path) -> None:
    before = usage(wattfare)
    archive = tmp_path / "by-month.jsonl.gz"

    wattfare("ledger", "archive", "--before", f"{THIS_MONTH.start:%Y-%m}", "--by", "month", "--to", str(archive))

    assert usage(wattfare) == before
    assert lines_of(archive)[-1] == {"rows": 5, "amount": 31_000}

    async def horizon(store: Store) -> object:
        return await store.archived_by_month_before()

    assert wattfare.store(horizon) == THIS_MONTH.start.date()
