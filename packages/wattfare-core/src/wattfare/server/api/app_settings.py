"""`GET` / `PATCH /api/v1/app`: the calling app's settings, read and changed with its secret key.

Today one setting: `outputAllowanceTokens`, the `max_tokens` Wattfare sends and holds for the app's requests
that send none (`null`: the server's defaults, shown beside it). Secret keys are cached for a few seconds per
instance, so another instance may apply a change up to that much later.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.access.authentication import authenticate
from wattfare.server.api.json_body import json_object, json_response
from wattfare.server.billing.output_allowance import AllowanceError, parse_allowance
from wattfare.server.errors import invalid
from wattfare.server.services import Services, services_of
from wattfare.server.store.records import KeyRecord

_SETTINGS = frozenset({"outputAllowanceTokens"})


async def _body(services: Services, key: KeyRecord) -> dict[str, object]:
    app = await services.store.get_app(key.app_id)
    return {
        "id": key.app_id,
        "name": app.name if app is not None else key.app_name,
        "mode": key.mode,
        "outputAllowanceTokens": await services.store.output_allowance(key.app_id),
        "defaultOutputAllowanceTokens": {
            "chat": services.settings.output_allowance_tokens,
            "reasoning": services.settings.reasoning_output_allowance_tokens,
        },
    }


async def get_app(request: Request) -> Response:
    """`GET /app`: the app's id, name and settings."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    return json_response(await _body(services, key))


async def update_app(request: Request) -> Response:
    """`PATCH /app` `{outputAllowanceTokens: int | null}`: change the app's settings."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    body = await json_object(request)
    unknown = sorted(set(body) - _SETTINGS)
    if unknown:
        raise invalid(f"Unknown setting {unknown[0]!r}: the settings are {', '.join(sorted(_SETTINGS))}.", unknown[0])
    if "outputAllowanceTokens" in body:
        given = body["outputAllowanceTokens"]
        try:
            if isinstance(given, str):
                raise AllowanceError("a JSON number of tokens, or null for the server's defaults")
            tokens = parse_allowance(given)
        except AllowanceError as exc:
            raise invalid(f"'outputAllowanceTokens' must be {exc}.", "outputAllowanceTokens") from None
        await services.store.set_output_allowance(key.app_id, tokens)
        services.keys.forget()  # this instance applies it at once
    return json_response(await _body(services, key))
