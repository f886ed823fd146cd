"""`ledger_scale.py`'s read endpoints timed over HTTP, and the statements behind them timed alone.

/status on the big and the empty database in turn; /usage for one user, the heaviest user and the whole app
(`ledger_scale_pages.py`); /account; then each statement alone with its plan (`ledger_inspect.py`).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from ledger_inspect import PostgresDatabase
from ledger_scale_pages import PAGE_USERS, matches_single_statement, time_pages, walk_all_pages
from ledger_scale_served import Served
from ledger_scale_timing import latency_summary, time_requests
from ledger_seed import MEMBER_COOKIE, Population
from servers import log

from wattfare.metering import window_containing, window_of_key
from wattfare.server.store.timestamps import to_text


def _month_range(key: str) -> dict[str, str]:
    window = window_of_key(key)
    return {"from": window.start.date().isoformat(), "to": (window.end - timedelta(days=1)).date().isoformat()}


def time_endpoints(target: Served, people: Population, args: argparse.Namespace) -> dict[str, Any]:
    """The other read endpoints on the big database, sequentially, each after its own warm-up."""
    rng = random.Random(7)
    samples = args.samples
    users = [f"bench-{rng.randrange(people.main_user_count)}" for _ in range(samples + 20)]
    month = _month_range(people.months[-2])  # the last full month
    auth = {"Authorization": f"Bearer {target.secret}"}
    results: dict[str, Any] = {"usage_month": month}
    with httpx.Client(base_url=target.base, headers=auth, timeout=600) as api:
        results["usage_user_month"] = time_requests(
            api, [("/api/v1/usage", {"appUserId": u, **month}) for u in users], 20
        )
        heaviest = [("/api/v1/usage", {"appUserId": people.heaviest_main_user, **month})] * 25
        results["usage_heaviest_user_month"] = time_requests(api, heaviest, 5)
        walks = walk_all_pages(api, month, args.walks)
        results["usage_app_all_pages"] = walks
        results["usage_app_page"] = time_pages(api, month, walks["cursors"], args.page_samples)
        results["usage_app_all_pages"]["matches_single_statement"] = matches_single_statement(
            target, people, walks.pop("rows_seen")
        )
    cookies = {"wattfare_session": MEMBER_COOKIE}
    with httpx.Client(base_url=target.base, cookies=cookies, timeout=60) as browser:
        page = browser.get("/account")
        if page.status_code != 200 or ("member-" not in page.text and "Other app" not in page.text):
            raise RuntimeError(f"/account did not show the member's apps ({page.status_code}): {page.text[:500]}")
        results["account"] = time_requests(browser, [("/account", {})] * (samples + 20), 20)
    return results


def time_status(big: Served, empty: Served, people: Population, samples: int) -> dict[str, Any]:
    """`/status` of random users on the big database and on the empty one, request by request in turn.

    Taking turns puts the machine's noise on both alike: the empty database is the floor the big one is read
    against (its users are unknown to it, which costs the same one index lookup).
    """
    rng = random.Random(11)
    users = [f"bench-{rng.randrange(people.main_user_count)}" for _ in range(samples + 20)]
    times: dict[str, list[float]] = {"big": [], "empty": []}
    with (
        httpx.Client(base_url=big.base, headers={"Authorization": f"Bearer {big.secret}"}) as on_big,
        httpx.Client(base_url=empty.base, headers={"Authorization": f"Bearer {empty.secret}"}) as on_empty,
    ):
        for index, user in enumerate(users):
            for kind, client in (("big", on_big), ("empty", on_empty)):
                started = time.perf_counter()
                response = client.get("/api/v1/status", params={"appUserId": user})
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"GET /status on {kind} answered {response.status_code}: {response.text[:300]}")
                if index >= 20:
                    times[kind].append(elapsed)
    return {kind: {**latency_summary(found), "statuses": {"200": len(found)}} for kind, found in times.items()}


def time_queries(target: Served, people: Population, cursors: dict[str, str | None]) -> dict[str, Any]:
    """The statements behind the endpoints, alone, with their plans."""
    now = datetime.now(UTC)
    window = window_containing(now)
    month = window_of_key(people.months[-2])
    span = (to_text(month.start), to_text(month.end))
    app = (people.main_app_id, "test")

    def page(after: str | None) -> tuple[object, ...]:
        # As `SqlLedger.usage_page` binds them: one user more than the page tells whether another follows.
        return (*app, *span, *app, after or "", *span, PAGE_USERS + 1)

    cases: dict[str, tuple[str, tuple[object, ...]]] = {
        "status": ("status", (window.key, *app, "bench-1")),
        "usage_user_month": ("usage_user_month", (*app, *span, "bench-1")),
        "usage_heaviest_user_month": ("usage_user_month", (*app, *span, people.heaviest_main_user)),
        "usage_app_month": ("usage_app_month", (*app, *span)),
        "usage_app_page_first": ("usage_app_page", page(cursors["first"])),
        "usage_app_page_middle": ("usage_app_page", page(cursors["middle"])),
        "account_connections": ("account_connections", (window.key, people.member_id)),
        "account_daily_spend": ("account_daily_spend", (people.member_id, to_text(window.start), to_text(window.end))),
    }
    found: dict[str, Any] = {}
    for case, (read, params) in cases.items():
        runs = 3 if read == "usage_app_month" else 7
        ms, rows = target.database.query_ms(read, params, runs)
        found[case] = {"query_ms": ms, "rows": rows, "plan": target.database.explain(read, params)}
        if read == "usage_app_page" and isinstance(target.database, PostgresDatabase):
            found[case]["plan_generic"] = target.database.explain(read, params, generic=True)
        log(f"    {case:<28} {ms:9.2f} ms alone ({rows} rows)")
    return found
