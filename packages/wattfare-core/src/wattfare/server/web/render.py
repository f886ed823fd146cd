"""Rendering pages: autoescaped Jinja templates, served with headers that refuse framing and foreign scripts.

Every page works offline: no CDN, no build step; scripts and styles come from `/static` on this server, and
inline scripts are forbidden by the Content-Security-Policy (data reaches scripts as inert JSON elements).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from wattfare.server.services import Services
from wattfare.server.text_formats import amount_text, cents_text, date_text, limit_text, moment_text, usd_text
from wattfare.server.web.sessions import Visitor, remember_browser

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class PageError(Exception):
    """A refusal shown as a page (the HTML counterpart of `ApiError`)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def prefers_html(request: Request) -> bool:
    """A person's browser asking for a page: `Accept` names `text/html`, outside the API (`/api/` keeps JSON)."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


@functools.cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    env.filters["usd"] = usd_text
    env.filters["cents"] = cents_text
    env.filters["date"] = date_text
    env.filters["amount"] = amount_text
    env.filters["limit"] = limit_text
    env.filters["moment"] = moment_text
    return env


def security_headers(form_targets: Sequence[str] = ()) -> dict[str, str]:
    """Headers of every page: no framing (clickjacking on Approve), no foreign code, no token leaks via Referer."""
    form_action = " ".join(("'self'", *form_targets))
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Consent URLs carry session tokens: never send them on to another site. (Not "no-referrer": that
        # would make browsers send `Origin: null` on our own forms, defeating the same-origin check.)
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(
    services: Services,
    found: Visitor,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    form_targets: Sequence[str] = (),
) -> Response:
    """A page for this visitor; `form_targets` are other origins its forms may lead to (OAuth)."""
    values = {"member": found.member, "csrf_token": found.csrf_token, **(context or {})}
    html = _environment().get_template(template).render(values)
    response = HTMLResponse(html, status, headers=security_headers(form_targets))
    remember_browser(services, found, response)
    return response
