"""`GET /usage`: an app's spend per user and model over a range of days.

Each row names the endpoint its requests called, `chat.completions` or `embeddings` (a model serves one of
them, so the rows are those of before embeddings existed, each with one more field).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import nanos_to_json_number, window_containing
from wattfare.server.access.authentication import authenticate
from wattfare.server.api.json_body import checked_app_user_id, json_response
from wattfare.server.errors import invalid
from wattfare.server.instants import utc_text
from wattfare.server.services import services_of


def _date(value: str | None, param: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{param}' must be a date such as 2026-11-01.", param) from None


def _end_of(day: date) -> datetime:
    """The instant `day` ends (inclusive `to`), without overflowing on the last representable day."""
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(), UTC)


async def usage(request: Request) -> Response:
    """`GET /usage?appUserId=&from=&to=`: spend per app user, model and endpoint (default: this month)."""
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
    rows = await services.store.usage(key.app_id, key.mode, app_user_id, start, end)
    return json_response(
        {
            "from": utc_text(start),
            "to": utc_text(end),
            "data": [
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
            ],
        }
    )
