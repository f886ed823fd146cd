"""`GET /usage` of the whole app in pages of app users (`limit`, `after` = the previous page's `nextAfter`).

The pages, read one after another, are the report read at once: every row once, each user's rows on one page,
in the order of app user ids; the SDK's `usage()` joins them for its caller.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import wattfare
from tests.server.api.envelope import assert_error
from tests.support.wattfare_server import InProcess, in_process
from wattfare._client import _usage_report

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

MINI = "openai/gpt-4o-mini"
GPT4O = "openai/gpt-4o"
EMBEDDING = "openai/text-embedding-3-small"
# Ids whose order differs between bytes and a natural collation, with a space and non-ASCII: the cursor must
# follow the store's own order whatever it is.
USERS = ["alice", "Bob", "bob", "b-9", "b-10", "zoë", "z z", "Ünal"]


async def spend(wf: InProcess, user: str, model: str = MINI) -> None:
    # The body's `user` carries any id; a header only ASCII.
    body = {"model": model, "messages": [{"role": "user", "content": "page me"}], "max_tokens": 5, "user": user}
    response = await wf.client.post("/chat/completions", json=body, headers=wf.auth(user=None))
    assert response.status_code == 200, response.text


async def embed(wf: InProcess, user: str) -> None:
    body = {"model": EMBEDDING, "input": "page me", "user": user}
    response = await wf.client.post("/embeddings", json=body, headers=wf.auth(user=None))
    assert response.status_code == 200, response.text


async def page(wf: InProcess, **params: str) -> dict[str, Any]:
    response = await wf.client.get("/usage", params=params, headers=wf.auth())
    assert response.status_code == 200, response.text
    return response.json()


async def all_pages(wf: InProcess, limit: int) -> list[dict[str, Any]]:
    pages = [await page(wf, limit=str(limit))]
    while pages[-1]["hasMore"]:
        assert len(pages) <= len(USERS), "the cursor did not move on"
        pages.append(await page(wf, limit=str(limit), after=pages[-1]["nextAfter"]))
    return pages


async def spend_for_everyone(wf: InProcess) -> None:
    for user in USERS:
        await spend(wf, user)
    await spend(wf, "bob", GPT4O)  # bob has three rows: two models and an embedding
    await embed(wf, "bob")
    await spend(wf, "alice")


async def test_pages_read_in_turn_are_the_whole_report(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await spend_for_everyone(wf)
        whole = await page(wf, limit="1000")
        assert (whole["hasMore"], whole["nextAfter"]) == (False, None)
        users_in_order = list(dict.fromkeys(row["appUserId"] for row in whole["data"]))
        assert sorted(users_in_order) == sorted(USERS)
        assert len(whole["data"]) == len(USERS) + 2
        # The default page (100 users) holds these few users whole, and says there is no more.
        assert await page(wf) == whole

        for limit in (1, 2, 3, 7, 8):
            pages = await all_pages(wf, limit)
            assert [row for p in pages for row in p["data"]] == whole["data"], limit
            assert len(pages) == -(-len(USERS) // limit)
            for earlier, later in itertools.pairwise(pages):
                users = list(dict.fromkeys(row["appUserId"] for row in earlier["data"]))
                assert len(users) == limit  # a page is `limit` users, however many rows they have
                assert earlier["hasMore"] is True
                assert earlier["nextAfter"] == users[-1]
                assert not {row["appUserId"] for row in later["data"]} & set(users)  # one page per user
            assert (pages[-1]["hasMore"], pages[-1]["nextAfter"]) == (False, None)
            assert {p["from"] for p in pages} == {whole["from"]}


async def test_a_page_holds_only_users_who_spent_in_the_period(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await spend_for_everyone(wf)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        later = await page(wf, limit="1", **{"from": str(tomorrow)})
        assert (later["data"], later["hasMore"], later["nextAfter"]) == ([], False, None)
        # Past the last user: an empty last page, not an error.
        last = max(row["appUserId"] for row in (await page(wf, limit="1000"))["data"])
        beyond = await page(wf, after=last)
        assert (beyond["data"], beyond["hasMore"], beyond["nextAfter"]) == ([], False, None)


async def test_a_cursor_needs_no_such_user_and_may_name_a_grant(tmp_path: Path) -> None:
    """`after` is a place in the order, not a lookup: any id sorts somewhere, a grant's `grant:…` user too."""
    async with in_process(tmp_path) as wf:
        await spend_for_everyone(wf)
        whole = (await page(wf, limit="1000"))["data"]
        for cursor in ("b", "grant:g_1", "zzzz", "\u00ff" * 256):
            rest = (await page(wf, after=cursor, limit="1000"))["data"]
            assert rest == whole[len(whole) - len(rest) :]  # a tail of the whole report
            assert all(row["appUserId"] != cursor for row in rest)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"limit": "１０"}, "limit"),  # fullwidth digits are digits to str.isdigit, not to us
        ({"limit": ""}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"after": ""}, "after"),
        ({"after": "x" * 257}, "after"),
        ({"after": "tab\there"}, "after"),
        ({"appUserId": "alice", "after": "a"}, "after"),
        ({"appUserId": "alice", "limit": "5"}, "after"),
    ],
)
async def test_bad_paging_is_refused_naming_the_parameter(tmp_path: Path, params: dict[str, str], param: str) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.get("/usage", params=params, headers=wf.auth())
        assert_error(response, 400, "invalid_request", param)


async def test_one_users_report_is_one_page(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await spend_for_everyone(wf)
        report = await page(wf, appUserId="bob")
        assert len(report["data"]) == 3
        assert (report["hasMore"], report["nextAfter"]) == (False, None)


async def test_the_sdk_reads_every_page_unless_asked_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with in_process(tmp_path) as wf:
        await spend_for_everyone(wf)
        whole = (await page(wf, limit="1000"))["data"]
        order = list(dict.fromkeys(row["appUserId"] for row in whole))
        # Pages of 3 users: the SDK must follow two cursors to read all 8.
        monkeypatch.setattr(_usage_report, "USAGE_PAGE_USERS", 3)
        sent: list[httpx.Request] = []

        async def log(request: httpx.Request) -> None:
            sent.append(request)

        wf.client.event_hooks["request"].append(log)
        async with wattfare.AsyncWattfare(wf.secret, "http://wattfare.test/api/v1", http_client=wf.client) as sdk:
            report = await sdk.usage()
            assert [(row.app_user_id, row.model, row.endpoint, row.requests) for row in report.data] == [
                (row["appUserId"], row["model"], row["endpoint"], row["requests"]) for row in whole
            ]
            assert (report.has_more, report.next_after) == (False, None)
            assert [request.url.params.get("after") for request in sent] == [None, order[2], order[5]]

            first = await sdk.usage(limit=2)
            assert first.has_more is True
            assert len({row.app_user_id for row in first.data}) == 2
            second = await sdk.usage(limit=2, after=first.next_after)
            assert second.data[0].app_user_id not in {row.app_user_id for row in first.data}
            with pytest.raises(wattfare.UsageError):
                await sdk.usage("bob", limit=2)
            with pytest.raises(wattfare.UsageError):
                await sdk.usage(limit=0)
