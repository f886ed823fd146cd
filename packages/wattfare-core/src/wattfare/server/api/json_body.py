"""The JSON bodies of the apps' API: small objects in, JSON out, fields checked with the parameter named."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import MAX_CAP_USD, cap_from_usd_text
from wattfare.server.errors import invalid
from wattfare.server.http_input import read_body
from wattfare.server.store.grant_records import GRANT_PREFIX_REFUSAL, GRANT_USER_PREFIX

_SMALL_BODY = 64 * 1024


def json_response(payload: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(orjson.dumps(payload), status, media_type="application/json")


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's small JSON object body (400 otherwise; `optional`: an empty body reads as `{}`)."""
    body = await read_body(request, _SMALL_BODY)
    if not body.strip() and optional:
        return {}
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise invalid("The request body must be a JSON object.")
    return parsed  # pyright: ignore[reportUnknownVariableType]


def query_count(text: str | None, param: str, *, default: int, most: int) -> int:
    """A whole number from 1 to `most` in the query string (`default` when absent), else 400 naming `param`."""
    if text is None:
        return default
    # Digits only, and few of them: `int()` of thousands of digits is refused (and slow) by CPython.
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(most)) and 1 <= int(text) <= most):
        raise invalid(f"'{param}' must be a whole number from 1 to {most}.", param)
    return int(text)


def checked_app_user_id(value: object, param: str = "appUserId") -> str:
    """An app's id for its user, as given (ids are the app's own: any printable text up to 256 characters)."""
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        raise invalid(f"'{param}' must be a non-empty printable string of at most 256 characters.", param)
    if value.startswith(GRANT_USER_PREFIX):
        raise invalid(GRANT_PREFIX_REFUSAL, param)
    return value


def cap_in_usd(value: object, param: str) -> int:
    """A monthly cap in USD (a JSON number) as nano-USD, parsed from its decimal text, never as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"'{param}' must be a number of US dollars.", param)
    nanos = cap_from_usd_text(repr(value) if isinstance(value, float) else str(value))
    if nanos is None:
        # A $0 cap would show "Connected" while refusing every request: to stop spending, revoke instead.
        raise invalid(f"'{param}' must be more than 0 and at most {MAX_CAP_USD} US dollars.", param)
    return nanos
