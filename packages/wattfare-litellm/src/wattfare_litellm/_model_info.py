"""Wattfare's model list as LiteLLM model info: `litellm.get_model_info("wattfare/<id>")` and the `supports_*` checks.

LiteLLM answers those from its model map, which knows no `wattfare/` model. Wattfare's `GET /models` lists
every model it meters, with its price (OpenRouter's listing format), so one request at start-up registers
them all: context window, output limit, prices per token, and, where the listing says so, what a model takes
(`supported_parameters`: "tools", "tool_choice", "structured_outputs", "reasoning") and reads
(`architecture.input_modalities`: "image", "file", "audio", "video"). A capability the listing does not
describe is left unset, which LiteLLM reads as unsupported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast

import litellm

from wattfare import AsyncWattfare, ModelInfo, UsageError, Wattfare
from wattfare_litellm._error_mapping import PROVIDER

# The listing's names for what a model takes, and LiteLLM's for the same capability.
_PARAMETERS: Final = {
    "tools": "supports_function_calling",
    "tool_choice": "supports_tool_choice",
    "structured_outputs": "supports_response_schema",
    "reasoning": "supports_reasoning",
}
_INPUTS: Final = {
    "image": "supports_vision",
    "file": "supports_pdf_input",
    "audio": "supports_audio_input",
    "video": "supports_video_input",
}


def register_models(client: Wattfare | None = None) -> list[str]:
    """Tell LiteLLM about every model Wattfare serves, from one `GET /models`, so `get_model_info` knows them.

    Afterwards `litellm.get_model_info("wattfare/openai/gpt-4o-mini")` gives its context window, output limit
    and Wattfare's prices, and `litellm.supports_function_calling(...)`, `supports_vision(...)`,
    `supports_response_schema(...)` answer from Wattfare's listing. Call it once at start-up, after
    `register()`; calling it again refreshes the prices. What a call costs is still Wattfare's metered
    charge (`response_cost`), whatever the map says.

    Args:
        client: The SDK client to list models with; one built from `WATTFARE_SECRET_KEY` /
            `WATTFARE_BASE_URL` (and closed) when None.

    Returns:
        The LiteLLM model names registered (`wattfare/<model id>`).

    Raises:
        wattfare.UsageError: The `wattfare` provider is not registered (`register()`, or the proxy's
            `custom_provider_map`): LiteLLM would not resolve `wattfare/<model>` to these entries.
        wattfare.WattfareError: The list could not be read (no key, a bad key, the server unreachable).
    """
    _require_provider()
    if client is None:
        with Wattfare() as own:
            return _register(own.models())
    return _register(client.models())


async def aregister_models(client: AsyncWattfare | None = None) -> list[str]:
    """`register_models` for async start-up code, over `AsyncWattfare`."""
    _require_provider()
    if client is None:
        async with AsyncWattfare() as own:
            return _register(await own.models())
    return _register(await client.models())


def model_cost_entry(model: ModelInfo) -> dict[str, Any]:
    """One model of Wattfare's listing as a LiteLLM model map entry (prices as LiteLLM's float USD per token).

    Cache reads and writes a listing does not price cost the prompt price, as Wattfare meters them.
    """
    pricing = model.pricing
    extra_prices = pricing.model_extra or {}
    max_output = model.top_provider.max_completion_tokens if model.top_provider is not None else None
    entry: dict[str, Any] = {
        "litellm_provider": PROVIDER,
        "mode": "chat",
        "max_input_tokens": model.context_length,
        "max_output_tokens": max_output,
        "max_tokens": max_output or model.context_length,
        "input_cost_per_token": float(pricing.prompt),
        "output_cost_per_token": float(pricing.completion),
        "cache_read_input_token_cost": float(_price(extra_prices.get("input_cache_read"), pricing.prompt)),
        "cache_creation_input_token_cost": float(_price(extra_prices.get("input_cache_write"), pricing.prompt)),
    }
    listing = model.model_extra or {}
    parameters = listing.get("supported_parameters")
    if isinstance(parameters, list):
        entry |= _capabilities(_PARAMETERS, cast(list[object], parameters))
    architecture = listing.get("architecture")
    if isinstance(architecture, Mapping):
        inputs = cast(Mapping[str, object], architecture).get("input_modalities")
        if isinstance(inputs, list):
            entry |= _capabilities(_INPUTS, cast(list[object], inputs))
    return {key: value for key, value in entry.items() if value is not None}


def _require_provider() -> None:
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        raise UsageError("register the provider first: call wattfare_litellm.register() before register_models()")


def _register(models: Iterable[ModelInfo]) -> list[str]:
    entries = {f"{PROVIDER}/{model.id}": model_cost_entry(model) for model in models}
    # Scoped to the provider, so no entry merges into another provider's row of the same name.
    litellm.register_model(entries, custom_llm_provider=PROVIDER)
    return list(entries)


def _capabilities(names: Mapping[str, str], listed: list[object]) -> dict[str, bool]:
    return {capability: item in listed for item, capability in names.items()}


def _price(value: object, default: Decimal) -> Decimal:
    """A listed price (a decimal string, as OpenRouter writes them), or `default` when absent or unreadable."""
    if not isinstance(value, str):
        return default
    try:
        price = Decimal(value)
    except InvalidOperation:
        return default
    return price if price.is_finite() and price >= 0 else default
