"""Wattfare's terms and privacy pages, `/terms` and `/privacy`: short, plain, and true of what this server stores.

Linked from every page's footer and from the consent popup. The text is the operator's starting point (a
placeholder an operator replaces with their own), but what it says Wattfare stores is what the code stores:
accounts, connections and caps, and per request its model, token counts and cost; never prompts or completions.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattfare.server.services import services_of
from wattfare.server.web.render import render
from wattfare.server.web.sessions import visitor


async def terms_page(request: Request) -> Response:
    """`GET /terms`."""
    services = services_of(request)
    return render(services, await visitor(services, request), "terms.html")


async def privacy_page(request: Request) -> Response:
    """`GET /privacy`."""
    services = services_of(request)
    return render(services, await visitor(services, request), "privacy.html")


routes = [
    Route("/terms", terms_page, methods=["GET"]),
    Route("/privacy", privacy_page, methods=["GET"]),
]
