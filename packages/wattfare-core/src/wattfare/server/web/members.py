"""Members signing up, in and out: email + password (argon2id), throttled, CSRF-checked.

A failed sign-in says only "Wrong email or password." and costs one password check either way (an unknown
email is checked against a dummy hash), so neither the answer nor its time tells an unknown email from a wrong
password. Guessing is throttled by `wattfare.server.web.sign_in_throttle`, per email *and* client address, so an
attacker can slow down their own guesses but cannot lock the owner out.

Sign-up answers as sign-in does wherever it can: a sign-up with a taken email and that account's password
signs in (the answer a new account gets), with another password it gets the failed sign-in's answer, and it
counts as a sign-in attempt either way (for free emails too, so the count reveals nothing). What still differs
is inherent without email verification: a free email gets an account and a session, a taken one without its
password does not (the README's Security section says so).
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.server.access.email_addresses import normalize_email
from wattfare.server.access.keys import new_id
from wattfare.server.access.passwords import hash_password, password_problem, verify_password
from wattfare.server.access.rate_limits import RateLimit
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import Member
from wattfare.server.web.forms import read_form, safe_next
from wattfare.server.web.render import render
from wattfare.server.web.sessions import Visitor, remember_known_browser, sign_in, sign_out, visitor
from wattfare.server.web.sign_in_throttle import admit_sign_in, client_key

SIGN_UPS_PER_CLIENT = RateLimit("sign-up-client", 20, timedelta(hours=1))

_WRONG_CREDENTIALS = "Wrong email or password."


def _form_page(
    services: Services, found: Visitor, next_url: str, error: str | None, status: int, email: str | None = None
) -> Response:
    return render(services, found, "signin.html", {"next": next_url, "error": error, "email": email}, status=status)


def _too_many(services: Services, found: Visitor, next_url: str, retry_after: int) -> Response:
    minutes = -(-retry_after // 60)
    wait = "a minute" if minutes == 1 else f"{minutes} minutes"
    response = _form_page(services, found, next_url, f"Too many attempts. Wait {wait} and try again.", 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


async def _signed_in(services: Services, request: Request, member: Member, next_url: str) -> Response:
    response = RedirectResponse(next_url, 303)
    await sign_in(services, request, member, response)
    remember_known_browser(services, member.email, response)
    return response


async def sign_in_page(request: Request) -> Response:
    """`GET /login`."""
    services = services_of(request)
    found = await visitor(services, request)
    return _form_page(services, found, safe_next(request.query_params.get("next"), "/account"), None, 200)


async def sign_up_page(request: Request) -> Response:
    """`GET /signup`."""
    return await sign_in_page(request)


async def sign_in_submit(request: Request) -> Response:
    """`POST /login`."""
    services = services_of(request)
    found, fields = await read_form(services, request)
    next_url = safe_next(fields.get("next"), "/account")
    email = normalize_email(fields.get("email"))
    retry_after = await admit_sign_in(services, request, email)
    if retry_after is not None:
        return _too_many(services, found, next_url, retry_after)
    credentials = await services.store.member_credentials(email) if email is not None else None
    matched = await verify_password(credentials.password_hash if credentials else None, fields.get("password", ""))
    if credentials is None or not matched:
        return _form_page(services, found, next_url, _WRONG_CREDENTIALS, 401, email)
    return await _signed_in(services, request, credentials.member, next_url)


async def sign_up_submit(request: Request) -> Response:
    """`POST /signup`: create the account (and grant the operator's sign-up credits, if any), then sign in.

    A taken email signs in to its account with that account's password and is refused like a failed sign-in
    otherwise: one password hash or check either way, and one sign-in attempt counted for every email.
    """
    services = services_of(request)
    found, fields = await read_form(services, request)
    next_url = safe_next(fields.get("next"), "/account")
    retry_after = await SIGN_UPS_PER_CLIENT.hit(services.store, client_key(request), services.clock())
    if retry_after is not None:
        return _too_many(services, found, next_url, retry_after)
    email = normalize_email(fields.get("email"))
    if email is None:
        return _form_page(services, found, next_url, "Enter a valid email address.", 422)
    password = fields.get("password", "")
    problem = password_problem(password)
    if problem is not None:
        return _form_page(services, found, next_url, f"Choose another password: {problem}", 422, email)
    retry_after = await admit_sign_in(services, request, email)
    if retry_after is not None:
        return _too_many(services, found, next_url, retry_after)
    credentials = await services.store.member_credentials(email)
    if credentials is None:
        now = services.clock()
        member = await services.store.create_member(new_id("mem"), email, await hash_password(password), now)
        if member is not None:
            if services.settings.signup_credits > 0:
                await services.store.grant_credits(member.id, services.settings.signup_credits, "sign-up credits", now)
            return await _signed_in(services, request, member, next_url)
        # Another sign-up of this email won the race: this one is an attempt on that account now.
        credentials = await services.store.member_credentials(email)
    if credentials is None or not await verify_password(credentials.password_hash, password):
        return _form_page(services, found, next_url, _WRONG_CREDENTIALS, 401, email)
    return await _signed_in(services, request, credentials.member, next_url)


async def sign_out_submit(request: Request) -> Response:
    """`POST /logout`."""
    services = services_of(request)
    _, fields = await read_form(services, request)
    response = RedirectResponse(safe_next(fields.get("next"), "/login"), 303)
    await sign_out(services, request, response)
    return response


async def home(request: Request) -> Response:
    """`GET /`: the member's account, or the sign-in page."""
    found = await visitor(services_of(request), request)
    return RedirectResponse("/account" if found.member else "/login", 303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in_submit, methods=["POST"]),
    Route("/signup", sign_up_page, methods=["GET"]),
    Route("/signup", sign_up_submit, methods=["POST"]),
    Route("/logout", sign_out_submit, methods=["POST"]),
]
