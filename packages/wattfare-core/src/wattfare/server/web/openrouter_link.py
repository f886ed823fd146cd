"""Linking a member's own OpenRouter account with OpenRouter's OAuth PKCE flow.

1. `POST /account/openrouter/link`: a fresh code verifier is kept (10 minutes, single use) under a random state
   that goes in the callback path, and the browser is sent to `<openrouter>/auth?callback_url=…&code_challenge=
   base64url(sha256(verifier))&code_challenge_method=S256`.
2. OpenRouter sends the browser back to `/account/openrouter/callback/<state>?code=…`. The state must be
   pending for the signed-in member; the code is exchanged with `POST <openrouter>/api/v1/auth/keys`
   `{code, code_verifier, code_challenge_method}` for `{key, user_id}`.
3. The key is encrypted at rest (AES-256-GCM, bound to the member) and from then on is the upstream key of
   that member's requests. `POST /account/openrouter/unlink` deletes it.

No client id or secret exists: PKCE's verifier, which never leaves this server, is the only proof.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.metering import nanos_to_usd
from wattfare.server.json_value import as_object
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import ProviderKey
from wattfare.server.web.forms import parse_cap, read_member_form
from wattfare.server.web.render import PageError
from wattfare.server.web.sessions import member_visitor

log = logging.getLogger("wattfare.openrouter")

STATE_TTL = timedelta(minutes=10)
_EXCHANGE_TIMEOUT = 15.0
_MAX_KEY_LENGTH = 512


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def key_hint(key: str) -> str:
    """What the account page shows of a linked key, in OpenRouter's own label style (`sk-or-v1-abc…123`)."""
    return f"{key[:12]}…{key[-3:]}"


async def start_link(request: Request) -> Response:
    """`POST /account/openrouter/link`: send the member to OpenRouter's consent page.

    An optional `monthlyLimitUsd` ("never more than $X a month through Wattfare") asks OpenRouter for a key with
    that monthly limit (`limit`, `usage_limit_type=monthly`): the provider's own hard ceiling behind the caps.
    """
    services = services_of(request)
    _, member, fields = await read_member_form(services, request, "/account")
    limit_text = fields.get("monthlyLimitUsd", "").strip()
    monthly_limit = parse_cap(limit_text) if limit_text else None
    if limit_text and monthly_limit is None:
        return RedirectResponse("/account?notice=bad-limit", 303)
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]: within PKCE's 43-128
    state = secrets.token_urlsafe(24)
    await services.store.put_oauth_state(
        _digest(state), member.id, verifier, services.clock() + STATE_TTL, monthly_limit
    )
    parameters = {
        "callback_url": f"{services.settings.public_url}/account/openrouter/callback/{state}",
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if monthly_limit is not None:
        parameters |= {"limit": f"{nanos_to_usd(monthly_limit).normalize():f}", "usage_limit_type": "monthly"}
    return RedirectResponse(f"{services.settings.openrouter_url}/auth?{urlencode(parameters)}", 303)


async def _exchange(services: Services, code: str, verifier: str) -> tuple[str, str | None] | None:
    """Trade the code for the member's key: `(key, user_id)`, or None when OpenRouter refuses."""
    url = f"{services.settings.openrouter_url}/api/v1/auth/keys"
    body = {"code": code, "code_verifier": verifier, "code_challenge_method": "S256"}
    try:
        async with httpx.AsyncClient(timeout=_EXCHANGE_TIMEOUT) as client:
            answer = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        log.warning("OpenRouter key exchange failed: %s", type(exc).__name__)
        return None
    if answer.status_code != 200:
        log.warning("OpenRouter refused the key exchange with %d", answer.status_code)
        return None
    try:
        parsed: Any = answer.json()
    except ValueError:
        return None
    answer_object = as_object(parsed) or {}
    key = answer_object.get("key")
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable():
        return None
    user_id = answer_object.get("user_id")
    return key, user_id if isinstance(user_id, str) else None


async def callback(request: Request) -> Response:
    """`GET /account/openrouter/callback/{state}?code=`: finish the link for the member who started it."""
    services = services_of(request)
    _, member = await member_visitor(services, request)
    pending = await services.store.take_oauth_state(_digest(request.path_params["state"]), services.clock())
    if pending is None:
        raise PageError(400, "Link expired", "This OpenRouter link expired or was already used. Start again.")
    if pending.member_id != member.id:
        raise PageError(403, "Refused", "This OpenRouter link was started by another Wattfare account.")
    code = request.query_params.get("code", "")
    exchanged = await _exchange(services, code, pending.verifier) if code else None
    if exchanged is None:
        return RedirectResponse("/account?notice=link-failed", 303)
    key, user_id = exchanged
    sealed = services.vault.seal(key, member.id)
    await services.store.put_provider_key(
        ProviderKey(member.id, "openrouter", sealed, key_hint(key), user_id, services.clock(), pending.monthly_limit)
    )
    await services.ceilings.after_change(member.id)  # credits pay nothing now: the ceiling key is disabled
    return RedirectResponse("/account?notice=linked", 303)


async def unlink(request: Request) -> Response:
    """`POST /account/openrouter/unlink`: delete the member's key; credits pay again from now on."""
    services = services_of(request)
    _, member, _ = await read_member_form(services, request, "/account")
    await services.store.delete_provider_key(member.id)
    await services.ceilings.after_change(member.id)
    return RedirectResponse("/account?notice=unlinked", 303)


routes = [
    Route("/account/openrouter/link", start_link, methods=["POST"]),
    Route("/account/openrouter/callback/{state}", callback, methods=["GET"]),
    Route("/account/openrouter/unlink", unlink, methods=["POST"]),
]
