"""One-time grants over HTTP: test keys mint them at once (`POST /grants`); an app reads one (`GET /grants/current`).

Live grants are made only by a member approving in the popup (`web.grants`): an app must never give itself a
member's budget, so a live key is refused here. Test grants need no member, like test connections: the
app's server mints one with its secret key, or its page with its publishable key from a registered origin.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import MAX_CAP_USD, cap_from_usd_text, nanos_to_json_number
from wattfare.server.access.authentication import authenticate
from wattfare.server.access.keys import hash_key
from wattfare.server.access.rate_limits import GRANT_MINTING
from wattfare.server.api.json_body import cap_in_usd, json_object, json_response
from wattfare.server.billing.grants import (
    DEFAULT_GRANT_LIFETIME,
    MAX_GRANT_LIFETIME,
    MAX_GRANT_REQUESTS,
    MIN_GRANT_LIFETIME,
    grant_for_token,
    mint_grant,
)
from wattfare.server.errors import ApiError, invalid
from wattfare.server.observability.request_log import note_caller
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import PublishableKey
from wattfare.server.store.grant_records import Grant
from wattfare.server.store.records import KeyRecord, Mode


def grant_requests(value: object) -> int:
    """The number of requests a grant allows: a whole number from 1 to `MAX_GRANT_REQUESTS`; 400 otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GRANT_REQUESTS:
        raise invalid(f"'requests' must be a whole number from 1 to {MAX_GRANT_REQUESTS}.", "requests")
    return value


def grant_max_amount(value: object) -> int | None:
    """A grant's dollar cap in nano-USD: a JSON number or a decimal string of USD (None: no cap); 400 otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        nanos = cap_from_usd_text(value)
        if nanos is None:
            raise invalid(f"'maxUsd' must be more than 0 and at most {MAX_CAP_USD} US dollars.", "maxUsd")
        return nanos
    return cap_in_usd(value, "maxUsd")


def grant_lifetime(value: object) -> timedelta:
    """How long a grant lives: whole seconds from 60 to 86,400 (one hour when not given); 400 otherwise."""
    if value is None:
        return DEFAULT_GRANT_LIFETIME
    low, high = int(MIN_GRANT_LIFETIME.total_seconds()), int(MAX_GRANT_LIFETIME.total_seconds())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"'expiresInSeconds' must be a whole number of seconds from {low} to {high}.", "expiresInSeconds")
    return timedelta(seconds=value)


def grant_view(grant: Grant, now_state: str) -> dict[str, Any]:
    """A grant as the API shows it (money as JSON numbers of USD, like `/status`)."""
    return {
        "grantId": grant.id,
        "state": now_state,
        "requestsAllowed": grant.requests_allowed,
        "requestsUsed": grant.requests_used,
        "requestsLeft": grant.requests_left,
        "maxUsd": None if grant.max_amount is None else nanos_to_json_number(grant.max_amount),
        "spentUsd": nanos_to_json_number(grant.spent),
        "reservedUsd": nanos_to_json_number(grant.reserved),
        "expiresAt": int(grant.expires_at.timestamp()),
    }


async def _minting_app(services: Services, request: Request) -> tuple[str, Mode]:
    """The test key minting a grant: a secret key (a server), or a publishable key from the app's own origin."""
    published = request.headers.get("wattfare-publishable-key")
    key: KeyRecord | PublishableKey
    if published is None:
        key = await authenticate(services.keys, request)
    else:
        if not published.startswith("pk_"):
            raise ApiError("auth", "Wattfare-Publishable-Key must be a publishable key (pk_…), never a secret key.")
        found = await services.store.find_publishable_key(hash_key(published))
        if found is None:
            raise ApiError("auth", "Invalid or revoked publishable key.")
        origin = request.headers.get("origin")
        app = await services.store.app_profile(found.app_id)
        if origin is None or app is None or origin not in app.allowed_origins:
            raise ApiError("auth", "A publishable key mints grants only from its app's registered origins.", status=403)
        note_caller(found.app_id, found.mode)
        key = found
    if key.mode != "test":
        raise invalid(
            "A live grant needs the member's approval: call requestGrant() from the app's page (wattfare.js), "
            "which opens Wattfare's popup. Only test keys mint grants at once."
        )
    return key.app_id, key.mode


async def create_grant(request: Request) -> Response:
    """`POST /grants` (test keys): a grant of `requests` requests, at most `maxUsd`, for `expiresInSeconds`."""
    services = services_of(request)
    app_id, mode = await _minting_app(services, request)
    await GRANT_MINTING.check(services.store, app_id, services.clock())
    body = await json_object(request)
    requests = grant_requests(body.get("requests"))
    max_amount = grant_max_amount(body.get("maxUsd"))
    lifetime = grant_lifetime(body.get("expiresInSeconds"))
    minted = await mint_grant(
        services.store,
        app_id=app_id,
        mode=mode,
        member_id=None,
        requests=requests,
        max_amount=max_amount,
        lifetime=lifetime,
        now=services.clock(),
    )
    grant = minted.grant
    return json_response(
        {
            "grantToken": minted.token,
            "grantId": grant.id,
            "expiresAt": int(grant.expires_at.timestamp()),
            "requests": grant.requests_allowed,
            "maxUsd": None if grant.max_amount is None else nanos_to_json_number(grant.max_amount),
        },
        status=201,
    )


async def current_grant(request: Request) -> Response:
    """`GET /grants/current` (secret key, `Wattfare-Grant`): the grant's state and what is left of it."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    token = request.headers.get("wattfare-grant")
    if not token:
        raise invalid("Name the grant with the 'Wattfare-Grant' header.", "Wattfare-Grant")
    grant = await grant_for_token(services.store, token, key.app_id, key.mode)
    if grant is None:
        raise ApiError("grant_invalid", "Unknown grant: it was not issued to this app, or the token is wrong.")
    return json_response(grant_view(grant, grant.state(services.clock())))
