"""`GET /usage` over months `wattfare ledger archive --by month` rolled up: whole months exact, part of one refused.

A month rolled up by month keeps its totals in rows dated its first instant, so a range starting or ending inside
it would count all of the month or none of it, silently. Run on both engines, through the API.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.server.api.envelope import assert_error
from tests.support.wattfare_server import InProcess, in_process
from wattfare.metering import Window, window_containing
from wattfare.server.billing.ledger_archive import DryRun, archive_ledger
from wattfare.server.instants import utc_now
from wattfare.server.store import Store, open_store
from wattfare.server.store.records import NewHold, Settlement

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

THIS_MONTH = window_containing(utc_now())
LAST_MONTH = window_containing(THIS_MONTH.start - timedelta(days=1))
TWO_MONTHS_AGO = window_containing(LAST_MONTH.start - timedelta(days=1))
CAP = 10**15


async def seed(store: Store, app_id: str) -> None:
    """Requests on the 3rd and the 20th of each of the last two months."""
    now = utc_now()
    await store.approve_connection("c_archived", app_id, "u1", "test", CAP, now)
    for window in (TWO_MONTHS_AGO, LAST_MONTH):
        for day, cost in ((2, 1_000), (19, 2_000)):
            at = window.start + timedelta(days=day, hours=12)
            hold = NewHold(f"req_{uuid.uuid4().hex}", "c_archived", window.key, cost, "m", at, at + timedelta(1))
            assert await store.try_reserve(hold)
            await store.settle(Settlement(hold.id, cost, prompt_tokens=7, completion_tokens=3), at)


def days(first: date, last: date) -> dict[str, str]:
    return {"from": first.isoformat(), "to": last.isoformat(), "appUserId": "u1"}


async def usage(wf: InProcess, params: dict[str, str]) -> dict[str, Any]:
    answer = await wf.client.get("/usage", params=params, headers=wf.auth())
    assert answer.status_code == 200, answer.text
    return answer.json()


def whole(window: Window) -> dict[str, str]:
    return days(window.start.date(), window.end.date() - timedelta(days=1))


async def test_whole_months_read_the_same_and_part_of_one_is_refused(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        store = open_store(wf.settings.database_url)
        try:
            await store.upgrade()
            await seed(store, wf.app.app.id)
            middle = TWO_MONTHS_AGO.start.date() + timedelta(days=10)
            both_months = days(TWO_MONTHS_AGO.start.date(), LAST_MONTH.end.date() - timedelta(days=1))
            before = [await usage(wf, params) for params in (whole(TWO_MONTHS_AGO), whole(LAST_MONTH), both_months)]
            assert (await usage(wf, days(middle, LAST_MONTH.start.date())))["data"]  # part of a month: fine so far

            await archive_ledger(store, THIS_MONTH.start.date(), DryRun(), by="month")

            after = [await usage(wf, params) for params in (whole(TWO_MONTHS_AGO), whole(LAST_MONTH), both_months)]
            assert [answer["data"] for answer in after] == [answer["data"] for answer in before]
            assert after[0]["data"][0]["requests"] == 2
            # A range starting or ending inside an archived month is refused, naming the edge to move.
            starts_inside = await wf.client.get("/usage", params=days(middle, date.today()), headers=wf.auth())
            assert_error(starts_inside, 400, "invalid_request", "from")
            assert "kept by month" in starts_inside.json()["error"]["message"]
            ends_inside = await wf.client.get(
                "/usage", params=days(TWO_MONTHS_AGO.start.date(), middle), headers=wf.auth()
            )
            assert_error(ends_inside, 400, "invalid_request", "to")
            # This month was not archived: any range of it is answered.
            assert (await usage(wf, days(THIS_MONTH.start.date(), date.today())))["data"] == []
        finally:
            await store.close()


async def test_an_archive_by_day_leaves_every_range_answerable(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        store = open_store(wf.settings.database_url)
        try:
            await store.upgrade()
            await seed(store, wf.app.app.id)
            middle = TWO_MONTHS_AGO.start.date() + timedelta(days=10)
            part = days(middle, LAST_MONTH.start.date() + timedelta(days=5))
            before = await usage(wf, part)

            await archive_ledger(store, THIS_MONTH.start.date(), DryRun(), by="day")

            assert (await usage(wf, part))["data"] == before["data"]
            assert before["data"][0]["requests"] == 2  # the 20th of one month, the 3rd of the next
        finally:
            await store.close()
