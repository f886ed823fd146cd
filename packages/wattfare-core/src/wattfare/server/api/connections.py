"""A user's connection: its status (secret key), and the browser's own view, approval and revocation (session token)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.access.authentication import authenticate
from wattfare.server.access.keys import hash_key, new_id
from wattfare.server.access.session_tokens import InvalidTokenError, SessionClaims, verify_session
from wattfare.server.api.json_body import cap_in_usd, checked_app_user_id, json_object, json_response
from wattfare.server.billing.connection_status import connection_status
from wattfare.server.errors import ApiError
from wattfare.server.http_input import bearer
from wattfare.server.observability.request_log import note_caller
from wattfare.server.services import Services, services_of
from wattfare.server.store.records import Mode


async def status(request: Request) -> Response:
    """`GET /status?appUserId=`: the connection and budget snapshot."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    app_user_id = checked_app_user_id(request.query_params.get("appUserId"))
    return json_response(await connection_status(services.store, services.clock(), key.app_id, key.mode, app_user_id))


async def disconnect_user(request: Request) -> Response:
    """`DELETE /connections/{appUserId}`: the app disconnects its user (spending stops at once)."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    app_user_id = checked_app_user_id(request.path_params["app_user_id"])
    await _revoke(services, key.app_id, key.mode, app_user_id)
    return Response(status_code=204)


async def _revoke(services: Services, app_id: str, mode: Mode, app_user_id: str) -> None:
    revoked = await services.store.revoke_connection(app_id, mode, app_user_id, services.clock())
    if revoked is not None:
        services.revocations.revoked(revoked.id)
        await services.ceilings.after_connection_change(revoked.id)


def _session(services: Services, request: Request) -> SessionClaims:
    try:
        claims = verify_session(services.signing_key, bearer(request), services.clock())
    except InvalidTokenError as exc:
        raise ApiError("auth", f"Invalid session token: {exc}.") from None
    note_caller(claims.app_id, claims.mode)
    return claims


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
    services = services_of(request)
    claims = await _browser_session(services, request)
    return json_response(
        await connection_status(services.store, services.clock(), claims.app_id, claims.mode, claims.app_user_id)
    )


async def approve_connection(request: Request) -> Response:
    """`POST /connections` (session token): approve or change the cap.

    Test-mode tokens approve at once. Live approval needs a signed-in member in the consent popup
    (`/connect`, see `wattfare.server.web.consent`), which this endpoint does not have, so live tokens get
    `not_connected` here: an app must never approve, or raise the cap of, a member's budget by itself.
    """
    services = services_of(request)
    claims = await _browser_session(services, request)
    body = await json_object(request, optional=True)
    if claims.mode != "test":
        raise ApiError("not_connected", "Live connections are approved by the member in the consent popup.")
    cap = cap_in_usd(body["monthlyUsd"], "monthlyUsd") if "monthlyUsd" in body else claims.monthly_cap
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
    return json_response(
        await connection_status(services.store, services.clock(), claims.app_id, mode, claims.app_user_id)
    )


async def revoke_connection(request: Request) -> Response:
    """`DELETE /connections` (session token): the browser disconnects its own user."""
    services = services_of(request)
    claims = await _browser_session(services, request)
    await _revoke(services, claims.app_id, claims.mode, claims.app_user_id)
    return Response(status_code=204)
