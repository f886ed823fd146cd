"""The consent popup, `/connect?session=<token>`: a member approves (or denies) an app's use of their budget.

The page shows the app's name and registered origins and the cap the app suggested, which the member may
change. Approval spends the session token (it approves at most once, within its 10 minutes) and creates or
updates the connection; the result page then posts the connection status to the window that opened the popup,
only to the app's registered origins, and closes. Like every page here, it refuses to be framed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattfare.metering import usd_to_nanos, window_containing
from wattfare.server.access.keys import new_id
from wattfare.server.access.session_tokens import InvalidTokenError, SessionClaims, verify_session
from wattfare.server.billing.connection_status import connection_status
from wattfare.server.billing.provider_ceiling import own_ceiling_refusal
from wattfare.server.mail.letters import app_connected_letter
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import AppProfile, Member
from wattfare.server.text_formats import amount_text, cents_text
from wattfare.server.web.forms import parse_cap, read_form
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import Visitor, visitor

_DEFAULT_CAP = usd_to_nanos("10")


def _claims(services: Services, token: str) -> SessionClaims:
    try:
        return verify_session(services.signing_key, token, services.clock())
    except InvalidTokenError as exc:
        reason = "has expired" if "expired" in str(exc) else "is not valid"
        raise PageError(
            400, "Link expired", f"This consent link {reason}. Go back to the app and press Connect again."
        ) from None


async def _app(services: Services, claims: SessionClaims) -> AppProfile:
    app = await services.store.app_profile(claims.app_id)
    if app is None:
        raise PageError(404, "Unknown app", "The app behind this link no longer exists.")
    return app


async def funding_text(services: Services, member: Member | None) -> str | None:
    """What pays for the member's requests, in a sentence (None for nobody signed in)."""
    if member is None:
        return None
    key = await services.store.provider_key(member.id)
    if key is not None:
        return f"Paid with your linked {key.provider.title()} key ({key.hint})."
    credits = await services.store.credit_balance(member.id)
    if credits.available:
        return f"Paid from your Wattfare credits: {cents_text(credits.available)} available."
    return "You have no funding yet: link your OpenRouter account or get credits in your Wattfare account."


async def _consent_page(
    services: Services,
    found: Visitor,
    claims: SessionClaims,
    token: str,
    app: AppProfile,
    *,
    error: str | None = None,
    cap_text: str | None = None,
    status: int = 200,
) -> Response:
    connection = await services.store.get_connection(claims.app_id, claims.mode, claims.app_user_id)
    default = connection.cap if connection is not None and connection.state == "active" else None
    default = default if default is not None else claims.monthly_cap if claims.monthly_cap is not None else _DEFAULT_CAP
    context: dict[str, Any] = {
        "app": app,
        "mode": claims.mode,
        "token": token,
        "needs_sign_in": claims.mode == "live" and found.member is None,
        "next": f"/connect?session={token}",
        "email": None,
        "suggested": claims.monthly_cap,
        "cap_text": cap_text if cap_text is not None else amount_text(default),
        "resets_at": window_containing(services.clock()).end,
        "funding": await funding_text(services, found.member) if claims.mode == "live" else None,
        "error": error,
    }
    return render(services, found, "connect.html", context, status=status)


async def connect_page(request: Request) -> Response:
    """`GET /connect?session=`: the consent popup."""
    services = services_of(request)
    found = await visitor(services, request)
    token = request.query_params.get("session", "")
    claims = _claims(services, token)
    return await _consent_page(services, found, claims, token, await _app(services, claims))


def _done(
    services: Services, found: Visitor, app: AppProfile, claims: SessionClaims, status: dict[str, Any], cap: int | None
) -> Response:
    """The result page; `cap` is the approved cap, or None when the member denied."""
    outcome = "denied" if cap is None else "approved"
    message = {
        "source": "wattfare",
        "type": "wattfare:connect",
        "result": outcome,
        "appUserId": claims.app_user_id,
        "status": status,
    }
    context = {
        "headline": f"{app.name} was not connected" if cap is None else f"{app.name} is connected",
        "detail": (
            "Nothing was changed."
            if cap is None
            else f"{app.name} may now spend up to {cents_text(cap)} a month from your budget."
        ),
        "result": {"origins": list(app.allowed_origins), "message": message},
    }
    return render(services, found, "connect_done.html", context)


async def decide(request: Request) -> Response:
    """`POST /connect`: the member's decision (CSRF-checked); approval spends the session token."""
    services = services_of(request)
    found, fields = await read_form(services, request)
    token = fields.get("session", "")
    claims = _claims(services, token)
    app = await _app(services, claims)
    if claims.mode == "live" and found.member is None:
        return await _consent_page(services, found, claims, token, app, status=401)
    decision = fields.get("decision")
    if decision == "deny":
        status = await connection_status(
            services.store, services.clock(), claims.app_id, claims.mode, claims.app_user_id
        )
        return _done(services, found, app, claims, status, None)
    if decision != "approve":
        raise PageError(400, "Bad request", "Choose Approve or Deny.")
    cap = parse_cap(fields.get("monthlyUsd"))
    if cap is None:
        error = (
            "Enter a monthly cap in US dollars, more than 0 and at most 1,000,000 (for example 10 or 2.50). "
            "To let this app spend nothing, choose Deny."
        )
        return await _consent_page(
            services, found, claims, token, app, error=error, cap_text=fields.get("monthlyUsd", ""), status=422
        )
    now = services.clock()
    if found.member is not None and claims.mode == "live":
        over = await own_ceiling_refusal(
            services.store,
            found.member.id,
            cap,
            window_containing(now).key,
            replacing=lambda c: c.app_id == claims.app_id and c.app_user_id == claims.app_user_id,
        )
        if over is not None:
            return await _consent_page(
                services, found, claims, token, app, error=over, cap_text=fields.get("monthlyUsd", ""), status=422
            )
    if not await services.store.spend_token(claims.token_id, datetime.fromtimestamp(claims.expires_at, UTC), now):
        raise PageError(
            409, "Link already used", "This consent link was already used. Go back to the app and press Connect again."
        )
    if found.member is not None:
        await services.store.approve_member_connection(
            new_id("conn"), claims.app_id, claims.app_user_id, claims.mode, cap, found.member.id, now
        )
        await services.ceilings.after_change(found.member.id)
        if claims.mode == "live":  # emailed after this answer, off its path: the member learns of every live app
            services.courier.send_soon(
                app_connected_letter(
                    found.member.email, app.name, cents_text(cap), f"{services.settings.public_url}/account"
                )
            )
    else:  # test mode: no account needed, funded by test credits
        await services.store.approve_connection(
            new_id("conn"), claims.app_id, claims.app_user_id, claims.mode, cap, now
        )
    status = await connection_status(services.store, services.clock(), claims.app_id, claims.mode, claims.app_user_id)
    return _done(services, found, app, claims, status, cap)


routes = [
    Route("/connect", connect_page, methods=["GET"]),
    Route("/connect", decide, methods=["POST"]),
]
