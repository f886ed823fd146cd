"""`GET /usage`: an app's spend per user and model over a range of days.

Each row names the endpoint its requests called, `chat.completions` or `embeddings` (a model serves one of
them, so the rows are those of before embeddings existed, each with one more field).

The whole app's report comes in pages of app users (`limit`, default 100, at most 1,000), ordered by app user id,
each user's rows all on one page; `nextAfter` is the cursor of the next page (`after=`) while `hasMore`. An app of
100,000 users once answered in one statement of seconds, past PostgreSQL's statement timeout (a 503) or, on
SQLite, holding the event loop that meters every stream (benchmarks/ledger_scale.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import nanos_to_json_number, window_containing
from wattfare.server.access.authentication import authenticate
from wattfare.server.api.json_body import checked_app_user_id, json_response, query_count
from wattfare.server.errors import invalid
from wattfare.server.instants import utc_text
from wattfare.server.services import services_of
from wattfare.server.store.archive_protocols import LedgerArchive
from wattfare.server.store.records import UsageRow

DEFAULT_PAGE_USERS = 100
MAX_PAGE_USERS = 1000


def _date(value: str | None, param: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{param}' must be a date such as 2026-11-01.", param) from None


def _cursor(value: str | None) -> str:
    """`after`: an app user id as `/usage` wrote it (a grant's `grant:…` user included), "" for the first page."""
    if value is None:
        return ""
    if not value or len(value) > 256 or not value.isprintable():
        raise invalid("'after' must be the 'nextAfter' of the previous page.", "after")
    return value


def _end_of(day: date) -> datetime:
    """The instant `day` ends (inclusive `to`), without overflowing on the last representable day."""
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(), UTC)


async def usage(request: Request) -> Response:
    """`GET /usage?appUserId=&from=&to=&limit=&after=`: spend per app user, model and endpoint (default: this month)."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    query = request.query_params
    app_user_id = checked_app_user_id(query["appUserId"]) if "appUserId" in query else None
    window = window_containing(services.clock())
    start_day = _date(query.get("from"), "from") or window.start.date()
    end_day = _date(query.get("to"), "to")
    start = datetime.combine(start_day, time(), UTC)
    end = _end_of(end_day) if end_day else window.end
    if end <= start:
        raise invalid("'to' must not be before 'from'.", "to")
    await _whole_archived_months(services.store, start, end)
    paging: dict[str, object] = {"hasMore": False, "nextAfter": None}
    if app_user_id is not None:
        if "after" in query or "limit" in query:
            raise invalid("'after' and 'limit' page the whole app's report; one user's has a single page.", "after")
        rows = await services.store.usage(key.app_id, key.mode, app_user_id, start, end)
    else:
        users = query_count(query.get("limit"), "limit", default=DEFAULT_PAGE_USERS, most=MAX_PAGE_USERS)
        after = _cursor(query.get("after"))
        # One user more than the page tells whether another page follows; its rows are not sent.
        rows = await services.store.usage_page(key.app_id, key.mode, start, end, after=after, users=users + 1)
        if len({row.app_user_id for row in rows}) > users:
            extra = rows[-1].app_user_id
            rows = [row for row in rows if row.app_user_id != extra]
            paging = {"hasMore": True, "nextAfter": rows[-1].app_user_id}
    return json_response({"from": utc_text(start), "to": utc_text(end), "data": _rows(rows), **paging})


async def _whole_archived_months(store: LedgerArchive, start: datetime, end: datetime) -> None:
    """Refuse a range that starts or ends inside a month `wattfare ledger archive --by month` rolled up.

    Such a month's roll-up rows are dated its first instant: part of it would silently count all of it, or none.
    """
    horizon = await store.archived_by_month_before()
    if horizon is None:
        return
    limit = datetime.combine(horizon, time(), UTC)
    for edge, param in ((start, "from"), (end, "to")):
        if edge < limit and edge != window_containing(edge).start:
            last = "first" if param == "from" else "last"
            raise invalid(
                f"Usage before {horizon.isoformat()} is kept by month (the ledger was archived): "
                f"make '{param}' the {last} day of a month.",
                param,
            )


def _rows(rows: list[UsageRow]) -> list[dict[str, object]]:
    return [
        {
            "appUserId": row.app_user_id,
            "model": row.model,
            "endpoint": row.endpoint,
            "requests": row.requests,
            "promptTokens": row.prompt_tokens,
            "completionTokens": row.completion_tokens,
            "costUsd": nanos_to_json_number(row.cost),
        }
        for row in rows
    ]
