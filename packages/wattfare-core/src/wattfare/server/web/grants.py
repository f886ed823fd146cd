"""The grant popup, `/grant?key=pk_…&requests=3&maxUsd=0.5`: a member allows one app a few requests, once.

The page shows the app's name and registered origins, the number of requests, the dollar cap (or that there is
none), how long the grant lives and what pays for it. Live keys need a signed-in member (sign up or in within
the popup, as on `/connect`); a test key's grant needs no account. The request is checked as the API checks
`POST /api/v1/grants`, with the same limits (`billing.grants`), and shown as a friendly page when it is wrong.
The form carries a signed, single-use offer (`web.grant_offers`), so a form posted twice mints one grant. The
result page posts `{type: "wattfare:grant", result, grantToken, expiresAt}` to the app's registered origins only
and closes, like the consent popup's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattfare.metering import MAX_CAP_USD
from wattfare.server.access.keys import hash_key
from wattfare.server.access.rate_limits import GRANT_MINTING
from wattfare.server.billing.grants import (
    DEFAULT_GRANT_LIFETIME,
    MAX_GRANT_LIFETIME,
    MAX_GRANT_REQUESTS,
    MIN_GRANT_LIFETIME,
    mint_grant,
)
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import AppProfile
from wattfare.server.store.records import Mode
from wattfare.server.text_formats import duration_text, limit_text
from wattfare.server.web.consent import funding_text
from wattfare.server.web.forms import parse_cap, read_form
from wattfare.server.web.grant_offers import InvalidOfferError, new_offer, read_offer, sign_offer
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import Visitor, visitor

_ASK_AGAIN = "Go back to the app and ask again."
_MAX_NUMBER_TEXT = 12


def _bad(message: str) -> PageError:
    return PageError(400, "This request cannot be approved", f"{message} {_ASK_AGAIN}")


def _whole_number(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdecimal() or len(text) > _MAX_NUMBER_TEXT:
        return None
    return int(text)


def requests_asked(text: str | None) -> int:
    """`requests`: a whole number from 1 to `MAX_GRANT_REQUESTS` (as the API takes it)."""
    count = _whole_number(text)
    if count is None or not 1 <= count <= MAX_GRANT_REQUESTS:
        raise _bad(f"The app must ask for a whole number of requests from 1 to {MAX_GRANT_REQUESTS:,}.")
    return count


def cap_asked(text: str | None) -> int | None:
    """`maxUsd`: absent for no dollar cap of its own, else more than $0 and at most the largest cap."""
    if text is None:
        return None
    cap = parse_cap(text)
    if cap is None:
        raise _bad(f"The dollar cap must be more than $0 and at most ${MAX_CAP_USD:,} (or left out for none).")
    return cap


def lifetime_asked(text: str | None) -> timedelta:
    """`expiresInSeconds`: from 60 to 86,400 seconds; one hour when absent."""
    if text is None:
        return DEFAULT_GRANT_LIFETIME
    low, high = int(MIN_GRANT_LIFETIME.total_seconds()), int(MAX_GRANT_LIFETIME.total_seconds())
    seconds = _whole_number(text)
    if seconds is None or not low <= seconds <= high:
        raise _bad(f"The grant must expire after a whole number of seconds from {low} to {high:,}.")
    return timedelta(seconds=seconds)


async def _app_of_key(services: Services, key: str) -> tuple[AppProfile, Mode]:
    if not key.startswith("pk_") or len(key) > 256:
        raise _bad("This link does not name an app with its publishable key (pk_…).")
    found = await services.store.find_publishable_key(hash_key(key))
    app = None if found is None else await services.store.app_profile(found.app_id)
    if found is None or app is None:
        raise PageError(404, "Unknown app", "The app behind this link is unknown, or its key was revoked.")
    return app, found.mode


async def grant_page(request: Request) -> Response:
    """`GET /grant?key=&requests=&maxUsd=&expiresInSeconds=`: the grant popup."""
    services = services_of(request)
    found = await visitor(services, request)
    query = request.query_params
    app, mode = await _app_of_key(services, query.get("key", ""))
    requests = requests_asked(query.get("requests"))
    cap = cap_asked(query.get("maxUsd"))
    lifetime = lifetime_asked(query.get("expiresInSeconds"))
    needs_sign_in = mode == "live" and found.member is None
    offer = None
    if not needs_sign_in:
        member_id = found.member.id if mode == "live" and found.member is not None else None
        made = new_offer(app.id, mode, requests, cap, lifetime, member_id, services.clock())
        offer = sign_offer(services.signing_key, made)
    context: dict[str, Any] = {
        "app": app,
        "mode": mode,
        "requests": requests,
        "cap": cap,
        "lifetime": duration_text(lifetime),
        "needs_sign_in": needs_sign_in,
        "next": f"/grant?{request.url.query}",
        "email": None,
        "offer": offer,
        "funding": await funding_text(services, found.member) if mode == "live" else None,
    }
    return render(services, found, "grant.html", context)


def _done(
    services: Services, found: Visitor, app: AppProfile, *, token: str | None, expires_at: datetime | None, detail: str
) -> Response:
    """The result page; `token` is the new grant's, or None when the member denied."""
    message = {
        "source": "wattfare",
        "type": "wattfare:grant",
        "result": "denied" if token is None else "approved",
        "grantToken": token,
        "expiresAt": None if expires_at is None else int(expires_at.timestamp()),
    }
    context = {
        "headline": f"{app.name} got no grant" if token is None else f"{app.name} may make its requests",
        "detail": detail,
        "result": {"origins": list(app.allowed_origins), "message": message},
    }
    return render(services, found, "connect_done.html", context)


async def decide(request: Request) -> Response:
    """`POST /grant`: the member's decision (CSRF-checked); approval spends the offer and mints the grant."""
    services = services_of(request)
    found, fields = await read_form(services, request)
    try:
        offer = read_offer(services.signing_key, fields.get("offer", ""))
    except InvalidOfferError:
        raise _bad("This form was changed or did not come from Wattfare, so nothing was granted.") from None
    app = await services.store.app_profile(offer.app_id)
    if app is None:
        raise PageError(404, "Unknown app", "The app that asked no longer exists.")
    member = found.member if offer.mode == "live" else None
    if offer.mode == "live" and member is None:
        raise PageError(401, "Signed out", f"You signed out before deciding, so nothing was granted. {_ASK_AGAIN}")
    if offer.member_id != (None if member is None else member.id):
        raise PageError(403, "Another account", f"This request was shown to another account. {_ASK_AGAIN}")
    decision = fields.get("decision")
    if decision == "deny":
        return _done(services, found, app, token=None, expires_at=None, detail="Nothing was granted.")
    if decision != "approve":
        raise PageError(400, "Bad request", "Choose Approve or Deny.")
    now = services.clock()
    if offer.expired(now):
        raise PageError(400, "Request expired", f"This request waited too long, so nothing was granted. {_ASK_AGAIN}")
    retry_after = await GRANT_MINTING.hit(services.store, offer.app_id, now)
    if retry_after is not None:
        raise PageError(
            429, "Too many grants", "This app asked for too many grants just now. Wait a minute and try again."
        )
    expires = datetime.fromtimestamp(offer.expires_at, UTC)
    if not await services.store.spend_token(f"grant-offer:{offer.offer_id}", expires, now):
        raise PageError(409, "Already answered", f"You already answered this request. {_ASK_AGAIN}")
    minted = await mint_grant(
        services.store,
        app_id=offer.app_id,
        mode=offer.mode,
        member_id=None if member is None else member.id,
        requests=offer.requests,
        max_amount=offer.max_amount,
        lifetime=offer.lifetime,
        now=now,
    )
    if member is not None:
        await services.ceilings.after_change(member.id)
    grant = minted.grant
    requests = f"{grant.requests_allowed} request" + ("" if grant.requests_allowed == 1 else "s")
    cap = "" if grant.max_amount is None else f", up to {limit_text(grant.max_amount)}"
    detail = f"{app.name} may make {requests}{cap}, for {duration_text(offer.lifetime)}."
    return _done(services, found, app, token=minted.token, expires_at=grant.expires_at, detail=detail)


routes = [
    Route("/grant", grant_page, methods=["GET"]),
    Route("/grant", decide, methods=["POST"]),
]
