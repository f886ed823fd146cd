"""The developer console's webhooks: an app's endpoints in each mode, their secrets, and their recent deliveries.

An app's page (`developers.app_page`) lists its endpoints in the mode shown, with the form that adds one; each
endpoint has a page of its own with its recent deliveries, a Resend button per delivery, and the buttons that
rotate its secret, disable or enable it, and delete it. A signing secret is shown once, on the page that made
it (adding or rotating), as secret keys are; Wattfare keeps it sealed because it signs every delivery.

Every route checks that the signed-in member owns the app and that the endpoint (or delivery) is that app's:
anything else, an unknown id included, is the same 404. Ids are checked for their shape before any store sees
them, so no byte a URL can carry reaches a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import AppProfile, Member
from wattfare.server.store.records import Mode
from wattfare.server.store.webhook_records import WebhookEndpoint
from wattfare.server.web.developers import app_page_context, own_app
from wattfare.server.web.forms import read_member_form
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import Visitor, member_visitor
from wattfare.server.webhooks.endpoints import InvalidEndpointError, add_endpoint, rotate_secret

# What ids (`app_…`, `we_…`, `msg_…`) look like: anything else is unknown without asking the store.
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# A refused form is shown again with what was typed, within reason (the form itself is at most 16 KiB).
_REFILL_LENGTH = 4096
# Notices are chosen by code, never echoed from the URL.
NOTICES = {
    "disabled": "Endpoint disabled: it receives no events until you enable it (events meanwhile are not kept for it).",
    "enabled": "Endpoint enabled: it receives the events made from now on.",
    "resent": "Delivery queued: it is sent again within seconds, under the same webhook-id.",
}
_DELIVERY_STATES = {"pending": "Pending", "delivered": "Delivered", "failed": "Failed"}


_NO_APP = "You have no such app."  # as `developers.own_app` says it
_NO_ENDPOINT = "This app has no such webhook endpoint."
_NO_DELIVERY = "This endpoint has no such delivery."


def _checked_id(text: str, unknown: str) -> str:
    if _ID.fullmatch(text) is None:
        raise PageError(404, "Not found", unknown)
    return text


async def _member_app(services: Services, member: Member, request: Request) -> AppProfile:
    return await own_app(services, member, _checked_id(request.path_params["app_id"], _NO_APP))


async def _app_endpoint(services: Services, app: AppProfile, request: Request) -> WebhookEndpoint:
    endpoint_id = _checked_id(request.path_params["endpoint_id"], _NO_ENDPOINT)
    endpoint = await services.store.webhook_endpoint(app.id, endpoint_id)
    if endpoint is None:
        raise PageError(404, "Not found", _NO_ENDPOINT)
    return endpoint


def _endpoint_url(endpoint: WebhookEndpoint, notice: str | None = None) -> str:
    page = f"/developers/apps/{endpoint.app_id}/webhooks/{endpoint.id}"
    return page if notice is None else f"{page}?notice={notice}"


def _refill(text: str) -> str:
    """What a person typed, safe to show again in a field: bounded, control characters replaced."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text[:_REFILL_LENGTH])


async def add(request: Request) -> Response:
    """`POST /developers/apps/{app_id}/webhooks`: add an endpoint in the posted mode; its secret is shown once."""
    services = services_of(request)
    visitor, member, fields = await read_member_form(services, request, "/developers")
    app = await _member_app(services, member, request)
    mode: Mode = "live" if fields.get("mode") == "live" else "test"
    url, description = fields.get("url", ""), fields.get("description", "")
    try:
        made = await add_endpoint(services.store, services.vault, app.id, mode, url, description, services.clock())
    except InvalidEndpointError as exc:
        context = await app_page_context(services, app, mode)
        context["webhook_form"] = {"url": _refill(url), "description": _refill(description), "invalid": exc.param}
        context["webhook_error"] = str(exc)
        return render(services, visitor, "app.html", context, status=422)
    context = {"app": app, "endpoint": made.endpoint, "secret": made.secret, "rotated": False}
    return render(services, visitor, "webhook_secret.html", context)


async def endpoint_page(request: Request) -> Response:
    """`GET /developers/apps/{app_id}/webhooks/{endpoint_id}`: the endpoint, its buttons, its recent deliveries."""
    services = services_of(request)
    visitor, member = await member_visitor(services, request)
    app = await _member_app(services, member, request)
    endpoint = await _app_endpoint(services, app, request)
    deliveries = await services.store.recent_deliveries(app.id, endpoint.id)
    now = services.clock()
    context: dict[str, Any] = {
        "app": app,
        "endpoint": endpoint,
        "deliveries": [(delivery, _DELIVERY_STATES[delivery.state]) for delivery in deliveries],
        # The old secret still signs (a rotation less than a day ago): say until when.
        "previous_until": endpoint.previous_until
        if endpoint.previous_until is not None and endpoint.previous_until > now
        else None,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return render(services, visitor, "webhook_endpoint.html", context)


@dataclass(frozen=True, slots=True)
class _EndpointForm:
    """A form posted to one of the signed-in member's apps' endpoints."""

    services: Services
    visitor: Visitor
    app: AppProfile
    endpoint: WebhookEndpoint


async def _endpoint_form(request: Request) -> _EndpointForm:
    """Read a form posted to `…/webhooks/{endpoint_id}/…`: 404 unless it is an endpoint of the member's app."""
    services = services_of(request)
    visitor, member, _ = await read_member_form(services, request, "/developers")
    app = await _member_app(services, member, request)
    return _EndpointForm(services, visitor, app, await _app_endpoint(services, app, request))


async def rotate(request: Request) -> Response:
    """`POST …/webhooks/{endpoint_id}/rotate`: a new secret, shown once; the old one signs too for 24 hours."""
    form = await _endpoint_form(request)
    services = form.services
    made = await rotate_secret(services.store, services.vault, form.app.id, form.endpoint.id, services.clock())
    if made is None:  # deleted meanwhile
        raise PageError(404, "Not found", _NO_ENDPOINT)
    context = {"app": form.app, "endpoint": made.endpoint, "secret": made.secret, "rotated": True}
    return render(services, form.visitor, "webhook_secret.html", context)


async def _set_enabled(request: Request, enabled: bool) -> Response:
    form = await _endpoint_form(request)
    endpoint = form.endpoint
    changed = await form.services.store.update_webhook_endpoint(form.app.id, endpoint.id, enabled=enabled)
    if changed is None:  # deleted meanwhile
        raise PageError(404, "Not found", _NO_ENDPOINT)
    return RedirectResponse(_endpoint_url(endpoint, "enabled" if enabled else "disabled"), 303)


async def disable(request: Request) -> Response:
    """`POST …/webhooks/{endpoint_id}/disable`: send it nothing until it is enabled again."""
    return await _set_enabled(request, enabled=False)


async def enable(request: Request) -> Response:
    """`POST …/webhooks/{endpoint_id}/enable`: send it the events made from now on (a failing one starts afresh)."""
    return await _set_enabled(request, enabled=True)


async def delete(request: Request) -> Response:
    """`POST …/webhooks/{endpoint_id}/delete`: stop delivering to it, for good."""
    form = await _endpoint_form(request)
    endpoint = form.endpoint
    await form.services.store.delete_webhook_endpoint(form.app.id, endpoint.id, form.services.clock())
    return RedirectResponse(f"/developers/apps/{form.app.id}?mode={endpoint.mode}&notice=webhook-deleted", 303)


async def resend(request: Request) -> Response:
    """`POST …/webhooks/{endpoint_id}/deliveries/{event_id}/resend`: send one delivery again, same webhook-id."""
    form = await _endpoint_form(request)
    event_id = _checked_id(request.path_params["event_id"], _NO_DELIVERY)
    services = form.services
    if not await services.store.resend_delivery(form.app.id, form.endpoint.id, event_id, services.clock()):
        raise PageError(404, "Not found", _NO_DELIVERY)
    return RedirectResponse(_endpoint_url(form.endpoint, "resent"), 303)


_ENDPOINT = "/developers/apps/{app_id}/webhooks/{endpoint_id}"

routes = [
    Route("/developers/apps/{app_id}/webhooks", add, methods=["POST"]),
    Route(_ENDPOINT, endpoint_page, methods=["GET"]),
    Route(f"{_ENDPOINT}/rotate", rotate, methods=["POST"]),
    Route(f"{_ENDPOINT}/disable", disable, methods=["POST"]),
    Route(f"{_ENDPOINT}/enable", enable, methods=["POST"]),
    Route(f"{_ENDPOINT}/delete", delete, methods=["POST"]),
    Route(f"{_ENDPOINT}/deliveries/{{event_id}}/resend", resend, methods=["POST"]),
]
