"""Members signing up, in and out: email + password (argon2id), rate-limited, CSRF-checked.

A failed sign-in says only "wrong email or password", takes as long for an unknown email as for a wrong
password, and counts against two limits kept in the store (so every server instance shares them): per email,
which stops guessing one account's password, and per client address, which stops spraying many accounts.
"""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.server.errors import ApiError
from wattfare.server.keys import new_id
from wattfare.server.pages.render import render
from wattfare.server.passwords import hash_password, password_problem, verify_password
from wattfare.server.rate_limits import RateLimit
from wattfare.server.services import Services
from wattfare.server.web_forms import read_form, safe_next
from wattfare.server.web_sessions import Visitor, sign_in, sign_out, visitor

SIGN_INS_PER_EMAIL = RateLimit("sign-in-email", 10, timedelta(minutes=15))
SIGN_INS_PER_CLIENT = RateLimit("sign-in-client", 50, timedelta(minutes=15))
SIGN_UPS_PER_CLIENT = RateLimit("sign-up-client", 20, timedelta(hours=1))

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_EMAIL_LENGTH = 254


def _services(request: Request) -> Services:
    return request.app.state.services


def normalize_email(text: str | None) -> str | None:
    """The email as accounts are keyed (trimmed, lower-case), or None when it does not look like one."""
    email = (text or "").strip().lower()
    return email if len(email) <= _MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email) else None


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form_page(
    services: Services, found: Visitor, next_url: str, error: str | None, status: int, email: str | None = None
) -> Response:
    return render(services, found, "signin.html", {"next": next_url, "error": error, "email": email}, status=status)


def _too_many(services: Services, found: Visitor, next_url: str, exc: ApiError) -> Response:
    response = _form_page(services, found, next_url, "Too many attempts. Wait a few minutes and try again.", 429)
    response.headers.update(exc.headers)
    return response


async def sign_in_page(request: Request) -> Response:
    """`GET /login`."""
    services = _services(request)
    found = await visitor(services, request)
    return _form_page(services, found, safe_next(request.query_params.get("next"), "/account"), None, 200)


async def sign_up_page(request: Request) -> Response:
    """`GET /signup`."""
    return await sign_in_page(request)


async def sign_in_submit(request: Request) -> Response:
    """`POST /login`."""
    services = _services(request)
    found, fields = await read_form(services, request)
    next_url = safe_next(fields.get("next"), "/account")
    email = normalize_email(fields.get("email"))
    now = services.clock()
    try:
        await SIGN_INS_PER_CLIENT.check(services.store, _client(request), now)
        if email is not None:
            await SIGN_INS_PER_EMAIL.check(services.store, email, now)
    except ApiError as exc:
        return _too_many(services, found, next_url, exc)
    credentials = await services.store.member_credentials(email) if email is not None else None
    matched = await verify_password(credentials.password_hash if credentials else None, fields.get("password", ""))
    if credentials is None or not matched:
        return _form_page(services, found, next_url, "Wrong email or password.", 401, email)
    response = RedirectResponse(next_url, 303)
    await sign_in(services, request, credentials.member, response)
    return response


async def sign_up_submit(request: Request) -> Response:
    """`POST /signup`: create the account (and grant the operator's sign-up credits, if any), then sign in."""
    services = _services(request)
    found, fields = await read_form(services, request)
    next_url = safe_next(fields.get("next"), "/account")
    try:
        await SIGN_UPS_PER_CLIENT.check(services.store, _client(request), services.clock())
    except ApiError as exc:
        return _too_many(services, found, next_url, exc)
    email = normalize_email(fields.get("email"))
    if email is None:
        return _form_page(services, found, next_url, "Enter a valid email address.", 422)
    password = fields.get("password", "")
    problem = password_problem(password)
    if problem is not None:
        return _form_page(services, found, next_url, f"Choose another password: {problem}", 422, email)
    now = services.clock()
    member = await services.store.create_member(new_id("mem"), email, await hash_password(password), now)
    if member is None:
        return _form_page(services, found, next_url, "An account with this email exists: sign in instead.", 409, email)
    if services.settings.signup_credits > 0:
        await services.store.grant_credits(member.id, services.settings.signup_credits, "sign-up credits", now)
    response = RedirectResponse(next_url, 303)
    await sign_in(services, request, member, response)
    return response


async def sign_out_submit(request: Request) -> Response:
    """`POST /logout`."""
    services = _services(request)
    _, fields = await read_form(services, request)
    response = RedirectResponse(safe_next(fields.get("next"), "/login"), 303)
    await sign_out(services, request, response)
    return response


async def home(request: Request) -> Response:
    """`GET /`: the member's account, or the sign-in page."""
    found = await visitor(_services(request), request)
    return RedirectResponse("/account" if found.member else "/login", 303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in_submit, methods=["POST"]),
    Route("/signup", sign_up_page, methods=["GET"]),
    Route("/signup", sign_up_submit, methods=["POST"]),
    Route("/logout", sign_out_submit, methods=["POST"]),
]
