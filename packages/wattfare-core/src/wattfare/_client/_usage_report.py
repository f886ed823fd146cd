"""`GET /usage` for the clients: one user's report, a page of the whole app's, and the pages joined."""

from __future__ import annotations

from datetime import UTC, date, datetime

from wattfare._client._core import RequestSpec, check_app_user_id
from wattfare._exceptions import UsageError
from wattfare._types import UsageReport


def _iso_date(value: date) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value.isoformat()


# App users per page when `usage()` reads the whole report for its caller: the server's most.
USAGE_PAGE_USERS = 1000


def usage_request(
    app_user_id: str | None, start: date | None, end: date | None, *, limit: int | None, after: str | None
) -> RequestSpec:
    """`GET /usage`: one user's report, or a page of the whole app's (`limit` users after `after`)."""
    params: dict[str, str] = {}
    if app_user_id is not None:
        params["appUserId"] = check_app_user_id(app_user_id)
        if limit is not None or after is not None:
            raise UsageError("limit and after page the whole app's usage; leave them out with an app_user_id")
    if start is not None:
        params["from"] = _iso_date(start)
    if end is not None:
        params["to"] = _iso_date(end)
    if limit is not None:
        if type(limit) is not int or not 1 <= limit <= USAGE_PAGE_USERS:  # bool is an int subclass: refused
            raise UsageError(f"limit must be an int from 1 to {USAGE_PAGE_USERS}, got {limit!r}")
        params["limit"] = str(limit)
    if after is not None:
        params["after"] = after
    return RequestSpec("GET", "/usage", params=params)


def follows_pages(app_user_id: str | None, limit: int | None, after: str | None) -> bool:
    """Whether `usage()` reads every page for its caller: the whole app's report, no page asked for."""
    return app_user_id is None and limit is None and after is None


def with_next_page(report: UsageReport, page: UsageReport) -> UsageReport:
    """`report` with the rows of the page that follows it, and that page's place in the report."""
    return report.model_copy(
        update={"data": [*report.data, *page.data], "has_more": page.has_more, "next_after": page.next_after}
    )
