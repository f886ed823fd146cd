"""Who is at the browser: a signed-in member (server-side session) or an anonymous visitor.

The session cookie holds 256 random bits; the database keeps only its SHA-256, so a stolen database signs no
one in. Cookies are HttpOnly (no script reads them) and SameSite=Lax: sent on the top-level navigation that
opens the consent popup from an app's site, never on another site's form posts or fetches.
Anonymous visitors get a random browser cookie instead, which their CSRF tokens are bound to (sign-in forms
need CSRF protection too: a forged sign-in would put the victim in the attacker's account).
A browser that signed in to an email keeps a *known browser* cookie for it (a random id and an HMAC binding it
to that email): its sign-ins are counted apart from strangers' (see `wattfare.server.web.sign_in_throttle`). It
grants nothing else, and no one can make one for an email whose password they do not know.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.services import Services
from wattfare.server.store.account_records import Member

SESSION_COOKIE = "wattfare_session"
BROWSER_COOKIE = "wattfare_browser"
KNOWN_BROWSER_COOKIE = "wattfare_known"
SESSION_TTL = timedelta(days=14)
_BROWSER_COOKIE_TTL = timedelta(days=365)
_KNOWN_BROWSER_TTL = timedelta(days=180)
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_MAX_COOKIE_LENGTH = 128


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Visitor:
    """The browser behind a request.

    Attributes:
        member: the signed-in member, or None.
        csrf_token: the token every form of this visitor must carry back.
        new_browser_cookie: a browser cookie to set on the response (first visit), or None.
    """

    member: Member | None
    csrf_token: str
    new_browser_cookie: str | None = None

    def csrf_matches(self, submitted: str | None) -> bool:
        """Whether a submitted token is this visitor's (constant-time)."""
        return submitted is not None and hmac.compare_digest(submitted.encode(), self.csrf_token.encode())


def _csrf_token(services: Services, binding: str) -> str:
    return hmac.new(services.signing_key, b"wattfare-csrf:" + binding.encode(), hashlib.sha256).hexdigest()


async def visitor(services: Services, request: Request) -> Visitor:
    """The visitor of this request (looked up once per request)."""
    cached = getattr(request.state, "wattfare_visitor", None)
    if isinstance(cached, Visitor):
        return cached
    member: Member | None = None
    session = request.cookies.get(SESSION_COOKIE, "")
    if session and len(session) <= _MAX_COOKIE_LENGTH:
        member = await services.store.web_session_member(_digest(session), services.clock())
    if member is not None:
        found = Visitor(member, _csrf_token(services, f"session:{session}"))
    else:
        browser = request.cookies.get(BROWSER_COOKIE, "")
        fresh = None
        if not browser or len(browser) > _MAX_COOKIE_LENGTH:
            browser = fresh = secrets.token_urlsafe(32)
        found = Visitor(None, _csrf_token(services, f"browser:{browser}"), fresh)
    request.state.wattfare_visitor = found
    return found


def _set_cookie(services: Services, response: Response, name: str, value: str, max_age: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path="/",
        secure=services.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def remember_browser(services: Services, found: Visitor, response: Response) -> None:
    """Set the anonymous browser cookie when this visit created one."""
    if found.new_browser_cookie is not None:
        _set_cookie(services, response, BROWSER_COOKIE, found.new_browser_cookie, _BROWSER_COOKIE_TTL)


async def sign_in(services: Services, request: Request, member: Member, response: Response) -> None:
    """Start a fresh session for `member` (never reusing a cookie the browser already had)."""
    previous = request.cookies.get(SESSION_COOKIE, "")
    if previous and len(previous) <= _MAX_COOKIE_LENGTH:
        await services.store.delete_web_session(_digest(previous))
    value = secrets.token_urlsafe(32)
    now = services.clock()
    await services.store.create_web_session(_digest(value), member.id, now, now + SESSION_TTL)
    _set_cookie(services, response, SESSION_COOKIE, value, SESSION_TTL)


async def sign_out(services: Services, request: Request, response: Response) -> None:
    """End the browser's session, in the database and in the browser."""
    session = request.cookies.get(SESSION_COOKIE, "")
    if session and len(session) <= _MAX_COOKIE_LENGTH:
        await services.store.delete_web_session(_digest(session))
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=services.settings.secure_cookies, httponly=True, samesite="lax"
    )


def _known_browser_mac(services: Services, browser_id: str, email: str) -> str:
    message = f"wattfare-known-browser:{browser_id}:{email}".encode()
    return hmac.new(services.signing_key, message, hashlib.sha256).hexdigest()


def known_browser(services: Services, request: Request, email: str) -> str | None:
    """The id of this browser when it signed in to `email` before (its cookie is genuine and for `email`), else None."""
    value = request.cookies.get(KNOWN_BROWSER_COOKIE, "")
    browser_id, _, mac = value.partition(".")
    # Only ids as issued: one with a ':' could shift the id/email boundary inside the MAC'd text.
    if len(value) > _MAX_COOKIE_LENGTH or not _BROWSER_ID.fullmatch(browser_id):
        return None
    expected = _known_browser_mac(services, browser_id, email)
    # Encoded first: compare_digest refuses str with non-ASCII characters, which a cookie may carry.
    return browser_id if hmac.compare_digest(mac.encode(), expected.encode()) else None


def remember_known_browser(services: Services, email: str, response: Response) -> None:
    """Mark the browser as one that signed in to `email` (a fresh id each time: ids are never reused)."""
    browser_id = secrets.token_urlsafe(16)
    value = f"{browser_id}.{_known_browser_mac(services, browser_id, email)}"
    _set_cookie(services, response, KNOWN_BROWSER_COOKIE, value, _KNOWN_BROWSER_TTL)


class SignInRequired(Exception):
    """A page for members only was asked for without a session: the app sends the browser to sign in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def member_visitor(services: Services, request: Request) -> tuple[Visitor, Member]:
    """The signed-in visitor and their member record; raise `SignInRequired` for anyone else."""
    found = await visitor(services, request)
    if found.member is None:
        raise SignInRequired(request.url.path)
    return found, found.member
