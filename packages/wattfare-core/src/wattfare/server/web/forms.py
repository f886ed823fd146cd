"""Reading what a page's form posted: bounded, CSRF-checked, same-origin, with typed amounts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from wattfare.metering import cap_from_usd_text
from wattfare.server.errors import ApiError
from wattfare.server.http_input import read_body
from wattfare.server.services import Services
from wattfare.server.store.account_records import Member
from wattfare.server.web.render import PageError
from wattfare.server.web.sessions import SignInRequired, Visitor, visitor

_FORM_LIMIT = 16 * 1024


def public_origin(services: Services) -> str:
    """The origin browsers reach this server at."""
    parts = urlsplit(services.settings.public_url)
    return f"{parts.scheme}://{parts.netloc}"


async def read_form(services: Services, request: Request) -> tuple[Visitor, dict[str, str]]:
    """The posted fields (first value of each), after checking they came from one of our own pages.

    Raises:
        PageError: 403 when the CSRF token is missing or wrong (a body that is not a urlencoded form has none),
            or the browser says another site sent it; 400 when the form is too large or unreadable.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin != public_origin(services):
        raise PageError(403, "Refused", "This form was sent from another site, so nothing was changed.")
    fields: dict[str, str] = {}
    # Anything but a urlencoded form cannot carry the CSRF token, so it is refused by the check below.
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            body = await read_body(request, _FORM_LIMIT)
            parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=64, strict_parsing=False)
        except (ApiError, UnicodeDecodeError, ValueError):
            raise PageError(400, "Bad request", "The form could not be read.") from None
        fields = {name: values[0] for name, values in parsed.items() if values}
    found = await visitor(services, request)
    if not found.csrf_matches(fields.get("csrf")):
        raise PageError(
            403, "Refused", "This form expired or did not come from Wattfare, so nothing was changed. Reload the page."
        )
    return found, fields


async def read_member_form(services: Services, request: Request, back: str) -> tuple[Visitor, Member, dict[str, str]]:
    """`read_form` for a signed-in member's form; anyone else is sent to sign in and then to `back`."""
    found, fields = await read_form(services, request)
    if found.member is None:
        raise SignInRequired(back)
    return found, found.member, fields


def parse_cap(text: str | None) -> int | None:
    """A monthly cap typed by a person (`10`, `2.50`, `$5`) as nano-USD, or None when it is not a valid cap."""
    if text is None:
        return None
    cleaned = text.strip().removeprefix("$").strip()
    if not cleaned or len(cleaned) > 32:
        return None
    return cap_from_usd_text(cleaned)


def safe_next(target: str | None, default: str) -> str:
    """A post-sign-in destination on this server only (never a protocol-relative or absolute URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 4096:
        return default
    return target
