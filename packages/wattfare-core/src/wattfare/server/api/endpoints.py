"""The HTTP API besides the proxy: sessions, connection status and consent, models, usage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import nanos_to_json_number, usd_to_nanos, window_containing
from wattfare.server.access.keys import hash_key, new_id
from wattfare.server.access.rate_limits import SESSION_MINTING
from wattfare.server.access.session_tokens import (
    InvalidTokenError,
    SessionClaims,
    mint_session,
    new_claims,
    verify_session,
)
from wattfare.server.errors import ApiError, invalid
from wattfare.server.http_input import bearer, read_body
from wattfare.server.proxy.chat_completions import authenticate
from wattfare.server.services import Services
from wattfare.server.store.records import Mode

_SMALL_BODY = 64 * 1024
_MAX_CAP_USD = 1_000_000


def json_response(payload: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(orjson.dumps(payload), status, media_type="application/json")


def _services(request: Request) -> Services:
    return request.app.state.services


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


def _app_user_id(value: object, param: str = "appUserId") -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        raise invalid(f"'{param}' must be a non-empty printable string of at most 256 characters.", param)
    return value


def _cap(value: object, param: str) -> int:
    """A monthly cap in USD (a JSON number) as nano-USD, parsed from its decimal text, never as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"'{param}' must be a number of US dollars.", param)
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        nanos = usd_to_nanos(text, rounding="down")
    except ValueError:
        raise invalid(f"'{param}' must be a finite number of US dollars.", param) from None
    if nanos <= 0 or nanos > usd_to_nanos(str(_MAX_CAP_USD)):
        # A $0 cap would show "Connected" while refusing every request: to stop spending, revoke instead.
        raise invalid(f"'{param}' must be more than 0 and at most {_MAX_CAP_USD} US dollars.", param)
    return nanos


async def connection_status(services: Services, app_id: str, mode: Mode, app_user_id: str) -> dict[str, Any]:
    """The `ConnectionStatus` body: never an error, `connected: false` for an unknown user."""
    window = window_containing(services.clock())
    snapshot = await services.store.budget(app_id, mode, app_user_id, window.key)
    resets_at = window.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    if snapshot is None:
        return {
            "connected": False,
            "state": None,
            "appUserId": app_user_id,
            "limits": {"monthlyUsd": None},
            "spentUsd": 0,
            "reservedUsd": 0,
            "remainingUsd": None,
            "resetsAt": resets_at,
        }
    active = snapshot.connection.state == "active"
    return {
        "connected": active,
        "state": snapshot.connection.state,
        "appUserId": app_user_id,
        "limits": {"monthlyUsd": nanos_to_json_number(snapshot.connection.cap)},
        "spentUsd": nanos_to_json_number(snapshot.spent),
        # Held by this user's requests in flight: settled (mostly for far less) as they finish.
        "reservedUsd": nanos_to_json_number(snapshot.reserved),
        "remainingUsd": nanos_to_json_number(snapshot.remaining) if active else 0,
        "resetsAt": resets_at,
    }


async def create_session(request: Request) -> Response:
    """`POST /sessions`: mint a 10-minute session token for one app user."""
    services = _services(request)
    key = await authenticate(services, request)
    await SESSION_MINTING.check(services.store, key.app_id, services.clock())
    body = await json_object(request)
    app_user_id = _app_user_id(body.get("appUserId"))
    cap: int | None = None
    limit = body.get("requestLimit")
    if limit is not None:
        if not isinstance(limit, dict) or "monthlyUsd" not in limit:
            raise invalid("'requestLimit' must be an object with 'monthlyUsd'.", "requestLimit")
        cap = _cap(limit["monthlyUsd"], "requestLimit.monthlyUsd")  # pyright: ignore[reportUnknownArgumentType]
    now = services.clock()
    if cap is not None:
        await services.store.remember_requested_cap(key.app_id, key.mode, app_user_id, cap, now)
    claims = new_claims(key.app_id, app_user_id, key.mode, cap, now)
    token = mint_session(services.signing_key, claims)
    return json_response(
        {
            "token": token,
            "expiresAt": claims.expires_at,
            "connectUrl": f"{services.settings.public_url}/connect?session={token}",
        }
    )


async def status(request: Request) -> Response:
    """`GET /status?appUserId=`: the connection and budget snapshot."""
    services = _services(request)
    key = await authenticate(services, request)
    app_user_id = _app_user_id(request.query_params.get("appUserId"))
    return json_response(await connection_status(services, key.app_id, key.mode, app_user_id))


async def disconnect_user(request: Request) -> Response:
    """`DELETE /connections/{appUserId}`: the app disconnects its user (spending stops at once)."""
    services = _services(request)
    key = await authenticate(services, request)
    app_user_id = _app_user_id(request.path_params["app_user_id"])
    await _revoke(services, key.app_id, key.mode, app_user_id)
    return Response(status_code=204)


async def _revoke(services: Services, app_id: str, mode: Mode, app_user_id: str) -> None:
    revoked = await services.store.revoke_connection(app_id, mode, app_user_id, services.clock())
    if revoked is not None:
        services.revocations.revoked(revoked.id)


def _session(services: Services, request: Request) -> SessionClaims:
    try:
        return verify_session(services.signing_key, bearer(request), services.clock())
    except InvalidTokenError as exc:
        raise ApiError("auth", f"Invalid session token: {exc}.") from None


async def _browser_session(services: Services, request: Request) -> SessionClaims:
    """The session token's claims, plus the browser's rules: the app's publishable key, from its own origins.

    A request with `Origin` (a browser) must name the app with `Wattfare-Publishable-Key`; a key given must be
    a publishable key of the token's app and mode (a secret key there is refused: it must never reach a
    browser); and the origin must be one the app registered. Server-side callers send no `Origin`.
    """
    claims = _session(services, request)
    origin = request.headers.get("origin")
    key_text = request.headers.get("wattfare-publishable-key")
    if key_text is None:
        if origin is not None:
            raise ApiError("auth", "Browsers must name the app with its publishable key (Wattfare-Publishable-Key).")
        return claims
    if not key_text.startswith("pk_"):
        raise ApiError(
            "auth",
            "Wattfare-Publishable-Key must be a publishable key (pk_…): a secret key must never reach a browser.",
        )
    key = await services.store.find_publishable_key(hash_key(key_text))
    if key is None or key.app_id != claims.app_id or key.mode != claims.mode:
        raise ApiError("auth", "The publishable key does not belong to this session's app and mode.")
    if origin is not None:
        app = await services.store.app_profile(claims.app_id)
        if app is None or origin not in app.allowed_origins:
            raise ApiError("auth", f"Origin {origin} is not allowed for this app.", status=403)
    return claims


async def get_connection(request: Request) -> Response:
    """`GET /connections` (session token): the browser reads its own connection."""
    services = _services(request)
    claims = await _browser_session(services, request)
    return json_response(await connection_status(services, claims.app_id, claims.mode, claims.app_user_id))


async def approve_connection(request: Request) -> Response:
    """`POST /connections` (session token): approve or change the cap.

    Test-mode tokens approve at once. Live approval needs a signed-in member in the consent popup
    (`/connect`, see `wattfare.server.web.consent`), which this endpoint does not have, so live tokens get
    `not_connected` here: an app must never approve, or raise the cap of, a member's budget by itself.
    """
    services = _services(request)
    claims = await _browser_session(services, request)
    body = await json_object(request, optional=True)
    if claims.mode != "test":
        raise ApiError("not_connected", "Live connections are approved by the member in the consent popup.")
    cap = _cap(body["monthlyUsd"], "monthlyUsd") if "monthlyUsd" in body else claims.monthly_cap
    expires_at = datetime.fromtimestamp(claims.expires_at, UTC)
    if not await services.store.spend_token(claims.token_id, expires_at, services.clock()):
        raise ApiError("auth", "This session token was already used to approve; mint a new session.")
    app = await services.store.get_app(claims.app_id)
    if app is None:
        raise ApiError("auth", "The app of this session no longer exists.")
    mode: Mode = claims.mode
    await services.store.approve_connection(
        new_id("conn"),
        claims.app_id,
        claims.app_user_id,
        mode,
        app.default_test_cap if cap is None else cap,
        services.clock(),
    )
    return json_response(await connection_status(services, claims.app_id, mode, claims.app_user_id))


async def revoke_connection(request: Request) -> Response:
    """`DELETE /connections` (session token): the browser disconnects its own user."""
    services = _services(request)
    claims = await _browser_session(services, request)
    await _revoke(services, claims.app_id, claims.mode, claims.app_user_id)
    return Response(status_code=204)


async def list_models(request: Request) -> Response:
    """`GET /models`: every model Wattfare can meter, with its prices (OpenAI list shape)."""
    services = _services(request)
    key = await authenticate(services, request)
    data: list[dict[str, Any]] = []
    for model in services.prices[key.mode].models():
        listing = model.listing
        data.append(
            {
                "id": model.id,
                "object": "model",
                "created": listing.get("created", 0),
                "owned_by": model.id.split("/", 1)[0],
                "name": listing.get("name", model.id),
                "context_length": model.context_length,
                "pricing": listing.get("pricing"),
                "top_provider": {"max_completion_tokens": model.max_output_tokens},
            }
        )
    return json_response({"object": "list", "data": data})


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


def _utc_text(moment: datetime) -> str:
    # isoformat, not strftime("%Y"): the platform's strftime does not zero-pad years before 1000.
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


async def usage(request: Request) -> Response:
    """`GET /usage?appUserId=&from=&to=`: spend per app user and model (default: this month)."""
    services = _services(request)
    key = await authenticate(services, request)
    query = request.query_params
    app_user_id = _app_user_id(query["appUserId"]) if "appUserId" in query else None
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
            "from": _utc_text(start),
            "to": _utc_text(end),
            "data": [
                {
                    "appUserId": row.app_user_id,
                    "model": row.model,
                    "requests": row.requests,
                    "promptTokens": row.prompt_tokens,
                    "completionTokens": row.completion_tokens,
                    "costUsd": nanos_to_json_number(row.cost),
                }
                for row in rows
            ],
        }
    )
