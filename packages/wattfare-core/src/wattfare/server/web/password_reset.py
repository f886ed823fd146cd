"""Forgotten passwords: a single-use, expiring link by email, then a new password and every old session ended.

`POST /password/forgot` answers the same page for every address ("if an account exists for that address, we
sent a link"), and at the same speed: the page only counts the client's attempt and hands the address to the
courier, which afterwards looks the member up, stores the link's hash and sends the email (`mail.courier`). The
link carries 256 random bits; the database keeps only their SHA-256, for 30 minutes, and spends them once.
Choosing the new password (`POST /password/reset`, CSRF-checked, the sign-up rules) sets it, spends the link and
the member's other links, and ends every session of the member in one transaction, then signs this browser in.

Requests are throttled per client address (`FORGOT_PER_CLIENT`, a 429 like sign-in's); emails per address
(`EMAILS_PER_ADDRESS`) are held back silently, so no one can flood a member's inbox, and the answer still
says nothing about the address.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.server.access.email_addresses import normalize_email
from wattfare.server.access.keys import hash_key
from wattfare.server.access.passwords import hash_password, password_problem
from wattfare.server.access.rate_limits import RateLimit
from wattfare.server.mail.letters import password_reset_letter
from wattfare.server.mail.message import Email
from wattfare.server.services import Services, services_of
from wattfare.server.web.forms import read_form
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import Visitor, remember_known_browser, sign_in, visitor
from wattfare.server.web.sign_in_throttle import client_key

RESET_LINK_TTL = timedelta(minutes=30)
FORGOT_PER_CLIENT = RateLimit("password-forgot-client", 20, timedelta(minutes=15))
EMAILS_PER_ADDRESS = RateLimit("password-reset-email", 3, timedelta(hours=1))


def _unusable() -> PageError:
    return PageError(
        400,
        "Link used or expired",
        "This password reset link was already used or has expired. Ask for a new one: "
        "choose \u201cForgot password?\u201d on the sign-in page.",
    )


def _forgot_page(
    services: Services, found: Visitor, *, sent: bool, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    context = {"sent": sent, "email": email, "error": error}
    return render(services, found, "password_forgot.html", context, status=status)


async def forgot_page(request: Request) -> Response:
    """`GET /password/forgot`: ask for the account's email."""
    services = services_of(request)
    return _forgot_page(services, await visitor(services, request), sent=False)


async def forgot_submit(request: Request) -> Response:
    """`POST /password/forgot`: the same answer for every address; the email, if any, goes out afterwards."""
    services = services_of(request)
    found, fields = await read_form(services, request)
    retry_after = await FORGOT_PER_CLIENT.hit(services.store, client_key(request), services.clock())
    if retry_after is not None:
        minutes = -(-retry_after // 60)
        wait = "a minute" if minutes == 1 else f"{minutes} minutes"
        response = _forgot_page(
            services, found, sent=False, error=f"Too many attempts. Wait {wait} and try again.", status=429
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    email = normalize_email(fields.get("email"))
    if email is None:
        return _forgot_page(
            services, found, sent=False, email=fields.get("email", ""), error="Enter a valid email address.", status=422
        )
    services.courier.compose_and_send_soon(lambda: _reset_letter(services, email))
    return _forgot_page(services, found, sent=True, email=email)


async def _reset_letter(services: Services, email: str) -> Email | None:
    """The reset email for `email`'s member, its link stored; None for an unknown address or one asked too often."""
    store = services.store
    if await EMAILS_PER_ADDRESS.hit(store, email, services.clock()) is not None:
        return None
    credentials = await store.member_credentials(email)
    if credentials is None:
        return None
    token = secrets.token_urlsafe(32)
    now = services.clock()
    await store.create_password_reset(hash_key(token), credentials.member.id, now, now + RESET_LINK_TTL)
    link = f"{services.settings.public_url}/password/reset?{urlencode({'token': token})}"
    return password_reset_letter(credentials.member.email, link, int(RESET_LINK_TTL.total_seconds()) // 60)


async def _reset_page(
    services: Services, found: Visitor, token: str, *, error: str | None = None, status: int = 200
) -> Response:
    member = await services.store.password_reset_member(hash_key(token), services.clock()) if token else None
    if member is None:
        raise _unusable()
    context = {"token": token, "email": member.email, "error": error}
    return render(services, found, "password_reset.html", context, status=status)


async def reset_page(request: Request) -> Response:
    """`GET /password/reset?token=`: the new-password form, or a 400 page for a link used, expired or unknown."""
    services = services_of(request)
    found = await visitor(services, request)
    return await _reset_page(services, found, request.query_params.get("token", ""))


async def reset_submit(request: Request) -> Response:
    """`POST /password/reset`: set the new password, spend the link, end every session, sign this browser in."""
    services = services_of(request)
    found, fields = await read_form(services, request)
    token = fields.get("token", "")
    password = fields.get("password", "")
    if password != fields.get("password_again", ""):
        return await _reset_page(services, found, token, error="The two passwords differ. Type it twice.", status=422)
    problem = password_problem(password)
    if problem is not None:
        return await _reset_page(services, found, token, error=f"Choose another password: {problem}", status=422)
    # Checked before the (deliberately slow) hash, so an unusable link costs no hashing.
    if not token or await services.store.password_reset_member(hash_key(token), services.clock()) is None:
        raise _unusable()
    member = await services.store.reset_password(hash_key(token), await hash_password(password), services.clock())
    if member is None:  # spent meanwhile by another submission of the same link
        raise _unusable()
    response = RedirectResponse("/account", 303)
    await sign_in(services, request, member, response)
    remember_known_browser(services, member.email, response)
    return response


routes = [
    Route("/password/forgot", forgot_page, methods=["GET"]),
    Route("/password/forgot", forgot_submit, methods=["POST"]),
    Route("/password/reset", reset_page, methods=["GET"]),
    Route("/password/reset", reset_submit, methods=["POST"]),
]
