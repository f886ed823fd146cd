"""The whole app's month read page by page, as the SDK's usage() reads it, for `ledger_scale.py`.

Every page once by `nextAfter` (wall time, pages, rows), one page timed at three cursors the walk found, and the
pages' rows checked against the old single statement's.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, cast

import httpx
from ledger_scale_served import Served
from ledger_scale_timing import latency_summary
from ledger_seed import Population
from servers import log

from wattfare.metering import nanos_to_json_number, window_of_key
from wattfare.server.store.timestamps import to_text

PAGE_USERS = 1000  # the server's most per page (`api.usage.MAX_PAGE_USERS`), as the SDK's usage() asks


def _page_params(month: dict[str, str], after: str | None) -> dict[str, str]:
    return {**month, "limit": str(PAGE_USERS), **({} if after is None else {"after": after})}


def _walk(api: httpx.Client, month: dict[str, str]) -> dict[str, Any]:
    """The whole report once, page after page by `nextAfter`, as the SDK's usage() reads it."""
    cursors: list[str | None] = [None]
    rows: list[dict[str, Any]] = []
    page_ms: list[float] = []
    body_bytes = 0
    started = time.perf_counter()
    while True:
        asked = time.perf_counter()
        response = api.get("/api/v1/usage", params=_page_params(month, cursors[-1]))
        page_ms.append((time.perf_counter() - asked) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET /usage page {len(cursors)} answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        rows += body["data"]
        body_bytes += len(response.content)
        if not body["hasMore"]:
            break
        cursors.append(body["nextAfter"])
    return {
        "seconds": time.perf_counter() - started,
        "pages": len(cursors),
        "page_ms": page_ms,
        "response_bytes": body_bytes,
        "cursors": cursors,
        "rows_seen": rows,
    }


def walk_all_pages(api: httpx.Client, month: dict[str, str], walks: int) -> dict[str, Any]:
    """Wall time to read the whole month by following `nextAfter`, `walks` times while a walk takes under 60 s.

    The first walk also finds the cursors the single pages are timed at. Each walk must see the same rows.
    """
    done = [_walk(api, month)]
    while len(done) < walks and done[-1]["seconds"] < 60:
        done.append(_walk(api, month))
        if done[-1]["rows_seen"] != done[0]["rows_seen"]:
            raise RuntimeError("two walks over the same month's pages saw different rows")
    first = done[0]
    rows = first["rows_seen"]
    page_ms = [ms for walk in done for ms in walk["page_ms"]]
    walked = ", ".join(f"{walk['seconds']:.2f}" for walk in done)
    users = len({row["appUserId"] for row in rows})
    log(
        f"    usage_app_all_pages          {walked} s a walk: {first['pages']} pages, {users:,} users, "
        f"{len(rows):,} rows"
    )
    return {
        "walks": len(done),
        "seconds": [walk["seconds"] for walk in done],
        "seconds_median": statistics.median(walk["seconds"] for walk in done),
        "pages": first["pages"],
        "users": users,
        "rows": len(rows),
        "requests": sum(row["requests"] for row in rows),
        "response_bytes": first["response_bytes"],
        # Every page of every walk, the first walk's colder pages included.
        "page_ms": {
            **latency_summary(page_ms),
            "slowest_page": max(range(len(first["page_ms"])), key=first["page_ms"].__getitem__),
        },
        "cursors": first["cursors"],
        "rows_seen": rows,
    }


def _spread(count: int) -> dict[str, int]:
    """Which of `count` pages: the first, a middle one and a late one (the last full page: the very last may hold
    a few users)."""
    return {"first": 0, "middle": count // 2, "late": count - 2 if count >= 3 else count - 1}


def time_pages(api: httpx.Client, month: dict[str, str], cursors: list[str | None], samples: int) -> dict[str, Any]:
    """One page of 1,000 users at cursors spread over the report, the three in turn; one of each a warm-up."""
    spread = {label: cursors[index] for label, index in _spread(len(cursors)).items()}
    labelled = [(label, _page_params(month, after)) for label, after in spread.items()] * (samples + 1)
    times: dict[str, list[float]] = {label: [] for label in spread}
    sizes: list[int] = []
    for index, (label, params) in enumerate(labelled):
        started = time.perf_counter()
        response = api.get("/api/v1/usage", params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET /usage {params} answered {response.status_code}: {response.text[:300]}")
        if index >= len(spread):
            times[label].append(elapsed)
            sizes.append(len(response.content))
    every = [ms for label_times in times.values() for ms in label_times]
    by_cursor = {label: latency_summary(label_times) for label, label_times in times.items()}
    result = {
        **latency_summary(every),
        "response_bytes": round(sum(sizes) / len(sizes)),
        "statuses": {"200": len(every)},
        "cursors": spread,
        "page_index": _spread(len(cursors)),
        "by_cursor": by_cursor,
    }
    shown = ", ".join(f"{label} {summary['p50_ms']:.1f}" for label, summary in by_cursor.items())
    log(f"    usage_app_page               p50 {result['p50_ms']:.2f}  p99 {result['p99_ms']:.2f} ms ({shown})")
    return result


def matches_single_statement(target: Served, people: Population, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The pages' rows against the old single statement's (`_USAGE_OF_ALL`, the console's): same rows, same order."""
    month = window_of_key(people.months[-2])
    whole = target.database.fetch(
        "usage_app_month", (people.main_app_id, "test", to_text(month.start), to_text(month.end))
    )
    expected = [
        (user, model, endpoint, count, prompt, completion, nanos_to_json_number(cast(int, cost)))
        for user, model, count, prompt, completion, cost, endpoint in whole
    ]
    seen = [
        (
            r["appUserId"],
            r["model"],
            r["endpoint"],
            r["requests"],
            r["promptTokens"],
            r["completionTokens"],
            r["costUsd"],
        )
        for r in rows
    ]
    same = seen == expected
    if not same:
        log(f"    the pages' {len(seen):,} rows differ from the single statement's {len(expected):,}")
    return {
        "same_rows": same,
        "single_statement_rows": len(expected),
        "single_statement_requests": sum(cast(int, row[3]) for row in expected),
    }
