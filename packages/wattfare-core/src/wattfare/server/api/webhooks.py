"""Webhook endpoints over HTTP (`/api/v1/webhooks/endpoints`): an app registers and manages them with its secret key.

The key's mode is the endpoints' mode: a test key lists, reads and changes only the app's test endpoints, and an
endpoint of another mode or another app answers 404, as one that does not exist. A signing secret is in an answer
twice only, in the clear: when the endpoint is made, and when its secret is rotated (the old one keeps signing for
a day, `endpoints.ROTATION_OVERLAP`). Bodies are closed: a field this API does not know is refused by name, as
`PATCH /app` refuses one. What an endpoint may be (its URL, its description, how many an app has) is
`wattfare.server.webhooks.endpoints`' to decide; this module turns its refusals into 400s naming the field.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattfare.server.access.authentication import authenticate
from wattfare.server.api.json_body import json_object, json_response, query_count
from wattfare.server.errors import ApiError, invalid
from wattfare.server.instants import utc_text
from wattfare.server.services import Services, services_of
from wattfare.server.store.records import KeyRecord, Mode
from wattfare.server.store.webhook_records import DeliveryRecord, WebhookEndpoint
from wattfare.server.webhooks.endpoints import (
    EndpointWithSecret,
    InvalidEndpointError,
    add_endpoint,
    checked_description,
    checked_url,
    rotate_secret,
)

ENDPOINTS: Final = "/api/v1/webhooks/endpoints"
"""The collection's path; one endpoint is `{ENDPOINTS}/{endpointId}`."""
DEFAULT_DELIVERIES = 20
MAX_DELIVERIES = 100
_CREATE_FIELDS = frozenset({"url", "description"})
_UPDATE_FIELDS = frozenset({"url", "description", "enabled"})


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its sealed secrets."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "mode": endpoint.mode,
        "state": endpoint.state,
        "failingSince": None if endpoint.failing_since is None else utc_text(endpoint.failing_since),
        "createdAt": utc_text(endpoint.created_at),
    }


def _with_secret(made: EndpointWithSecret) -> dict[str, Any]:
    return {**endpoint_view(made.endpoint), "secret": made.secret}


def delivery_view(delivery: DeliveryRecord) -> dict[str, Any]:
    """One event's delivery to an endpoint, as the API shows it."""
    return {
        "eventId": delivery.event_id,
        "type": delivery.type,
        "createdAt": utc_text(delivery.created_at),
        "state": delivery.state,
        "attempts": delivery.attempts,
        "nextAttemptAt": utc_text(delivery.next_attempt_at),
        "lastAttemptAt": None if delivery.last_attempt_at is None else utc_text(delivery.last_attempt_at),
        "lastStatus": delivery.last_status,
        "lastError": delivery.last_error,
        "deliveredAt": None if delivery.delivered_at is None else utc_text(delivery.delivered_at),
    }


@contextmanager
def _refused_as_bad_request() -> Generator[None]:
    """`InvalidEndpointError` as a 400 naming its field."""
    try:
        yield
    except InvalidEndpointError as exc:
        raise invalid(str(exc), exc.param) from None


def _only(body: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise invalid(f"Unknown field {unknown[0]!r}: the fields are {', '.join(sorted(known))}.", unknown[0])


def _url(value: object, mode: Mode) -> str:
    if not isinstance(value, str):
        raise invalid("'url' must be a string: an absolute http:// or https:// URL.", "url")
    with _refused_as_bad_request():
        return checked_url(value, mode)


def _description(value: object) -> str:
    if value is not None and not isinstance(value, str):
        raise invalid("'description' must be a string (or null for none).", "description")
    with _refused_as_bad_request():
        return checked_description(value)


def _not_found() -> ApiError:
    return invalid("No such webhook endpoint for this app in this key's mode.", status=404)


async def _endpoint(services: Services, key: KeyRecord, request: Request) -> WebhookEndpoint:
    """The endpoint the path names, if it is the key's app's in the key's mode; 404 otherwise."""
    found = await services.store.webhook_endpoint(key.app_id, request.path_params["endpointId"])
    if found is None or found.mode != key.mode:
        raise _not_found()
    return found


async def list_endpoints(request: Request) -> Response:
    """`GET /webhooks/endpoints`: the app's endpoints in the key's mode, oldest first."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    found = await services.store.webhook_endpoints(key.app_id, key.mode)
    return json_response({"data": [endpoint_view(endpoint) for endpoint in found]})


async def create_endpoint(request: Request) -> Response:
    """`POST /webhooks/endpoints` `{url, description?}`: register an endpoint; its secret is in this answer only."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    body = await json_object(request)
    _only(body, _CREATE_FIELDS)
    if "url" not in body:
        raise invalid("'url' is required: where Wattfare posts the events.", "url")
    url = _url(body["url"], key.mode)
    description = _description(body.get("description"))
    with _refused_as_bad_request():
        made = await add_endpoint(
            services.store, services.vault, key.app_id, key.mode, url, description, services.clock()
        )
    return json_response(_with_secret(made), status=201)


async def get_endpoint(request: Request) -> Response:
    """`GET /webhooks/endpoints/{endpointId}`: one endpoint."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    return json_response(endpoint_view(await _endpoint(services, key, request)))


async def update_endpoint(request: Request) -> Response:
    """`PATCH /webhooks/endpoints/{endpointId}` `{url?, description?, enabled?}`: change an endpoint.

    `enabled: false` stops its deliveries (events made meanwhile are not kept for it); any change to a `failing`
    endpoint makes it `enabled` again (the store's rule: a fixed endpoint starts afresh).
    """
    services = services_of(request)
    key = await authenticate(services.keys, request)
    body = await json_object(request)
    _only(body, _UPDATE_FIELDS)
    url = _url(body["url"], key.mode) if "url" in body else None
    description = _description(body["description"]) if "description" in body else None
    enabled = body.get("enabled")
    if "enabled" in body and not isinstance(enabled, bool):
        raise invalid("'enabled' must be true or false.", "enabled")
    current = await _endpoint(services, key, request)
    if not body:
        return json_response(endpoint_view(current))
    # Only what the body names is sent: a concurrent change to another field is kept, not written over.
    changed = await services.store.update_webhook_endpoint(
        key.app_id, current.id, url=url, description=description, enabled=enabled
    )
    if changed is None:  # deleted meanwhile
        raise _not_found()
    return json_response(endpoint_view(changed))


async def delete_endpoint(request: Request) -> Response:
    """`DELETE /webhooks/endpoints/{endpointId}`: stop delivering to an endpoint, for good (204)."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    current = await _endpoint(services, key, request)
    if not await services.store.delete_webhook_endpoint(key.app_id, current.id, services.clock()):
        raise _not_found()
    return Response(status_code=204)


async def rotate_endpoint_secret(request: Request) -> Response:
    """`POST /webhooks/endpoints/{endpointId}/rotate-secret`: a new secret, in this answer only."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    current = await _endpoint(services, key, request)
    rotated = await rotate_secret(services.store, services.vault, key.app_id, current.id, services.clock())
    if rotated is None:
        raise _not_found()
    return json_response(_with_secret(rotated))


async def list_deliveries(request: Request) -> Response:
    """`GET /webhooks/endpoints/{endpointId}/deliveries?limit=`: the endpoint's deliveries, newest event first."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    limit = query_count(request.query_params.get("limit"), "limit", default=DEFAULT_DELIVERIES, most=MAX_DELIVERIES)
    current = await _endpoint(services, key, request)
    found = await services.store.recent_deliveries(key.app_id, current.id, limit)
    return json_response({"data": [delivery_view(delivery) for delivery in found]})


async def resend_delivery(request: Request) -> Response:
    """`POST /webhooks/endpoints/{endpointId}/deliveries/{eventId}/resend`: send one event again, now (202)."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    current = await _endpoint(services, key, request)
    event_id = request.path_params["eventId"]
    if not await services.store.resend_delivery(key.app_id, current.id, event_id, services.clock()):
        raise invalid("This endpoint has no delivery of that event.", status=404)
    return json_response({"resent": True}, status=202)


routes: list[Route] = [
    Route(ENDPOINTS, list_endpoints, methods=["GET"]),
    Route(ENDPOINTS, create_endpoint, methods=["POST"]),
    Route(f"{ENDPOINTS}/{{endpointId}}", get_endpoint, methods=["GET"]),
    Route(f"{ENDPOINTS}/{{endpointId}}", update_endpoint, methods=["PATCH"]),
    Route(f"{ENDPOINTS}/{{endpointId}}", delete_endpoint, methods=["DELETE"]),
    Route(f"{ENDPOINTS}/{{endpointId}}/rotate-secret", rotate_endpoint_secret, methods=["POST"]),
    Route(f"{ENDPOINTS}/{{endpointId}}/deliveries", list_deliveries, methods=["GET"]),
    Route(f"{ENDPOINTS}/{{endpointId}}/deliveries/{{eventId}}/resend", resend_delivery, methods=["POST"]),
]
