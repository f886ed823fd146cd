"""`GET /models`: every model Wattfare can meter, with its prices."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.access.authentication import authenticate
from wattfare.server.api.json_body import json_response
from wattfare.server.services import services_of


async def list_models(request: Request) -> Response:
    """`GET /models`: every model Wattfare can meter, with its prices (OpenAI list shape)."""
    services = services_of(request)
    key = await authenticate(services.keys, request)
    data: list[dict[str, Any]] = []
    for model in services.prices[key.mode].models():
        listing = model.listing
        data.append(
            {
                "id": model.id,
                "object": "model",
                "created": listing.get("created", 0),
                "owned_by": model.id.split("/", 1)[0],
                "name": listing.get("name", model.id),
                "context_length": model.context_length,
                "pricing": listing.get("pricing"),
                "top_provider": {"max_completion_tokens": model.max_output_tokens},
                # What the model accepts (tools, images, ...), as OpenRouter lists it: LiteLLM and other
                # frameworks read capabilities from here.
                "architecture": listing.get("architecture"),
                "supported_parameters": listing.get("supported_parameters"),
            }
        )
    return json_response({"object": "list", "data": data})
