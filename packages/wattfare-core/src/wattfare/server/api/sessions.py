"""`POST /sessions`: an app's server mints a short-lived token for one of its users to connect a budget."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.access.authentication import authenticate
from wattfare.server.access.rate_limits import SESSION_MINTING
from wattfare.server.access.session_tokens import mint_session, new_claims
from wattfare.server.api.json_body import cap_in_usd, checked_app_user_id, json_object, json_response
from wattfare.server.errors import invalid
from wattfare.server.services import services_of


async def create_session(request: Request) -> Response:
    """`POST /sessions`: mint a 10-minute session token for one app user."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    await SESSION_MINTING.check(services.store, key.app_id, services.clock())
    body = await json_object(request)
    app_user_id = checked_app_user_id(body.get("appUserId"))
    cap: int | None = None
    limit = body.get("requestLimit")
    if limit is not None:
        if not isinstance(limit, dict) or "monthlyUsd" not in limit:
            raise invalid("'requestLimit' must be an object with 'monthlyUsd'.", "requestLimit")
        cap = cap_in_usd(limit["monthlyUsd"], "requestLimit.monthlyUsd")  # pyright: ignore[reportUnknownArgumentType]
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
