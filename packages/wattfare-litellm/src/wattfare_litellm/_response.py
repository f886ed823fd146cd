"""A Wattfare completion as LiteLLM's `ModelResponse` (embeddings as its `EmbeddingResponse`), with Wattfare's charge
as `usage.cost`.

LiteLLM takes `usage.cost` as the call's `response_cost` (its callbacks, budgets and spend logs),
so a LiteLLM user's own accounting equals what Wattfare metered. LiteLLM keeps costs as floats:
the exact `Decimal` is converted only here, at the edge, and kept exact in the `wattfare-*`
headers that LiteLLM exposes as `_hidden_params["additional_headers"]`, next to `wattfare-max-tokens`
(what Wattfare sent upstream) and `wattfare-clamped` (whether the user's nearly used cap lowered it).
A stream has no such headers in LiteLLM: its last content chunk carries the same as
`delta.provider_specific_fields["wattfare"]` (see `wattfare_fields`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
    convert_to_model_response_object,  # pyright: ignore[reportUnknownVariableType]
)
from litellm.types.utils import EmbeddingResponse as LiteLLMEmbeddingResponse
from litellm.types.utils import ModelResponse
from litellm.types.utils import Usage as LiteLLMUsage

from wattfare import ChatCompletion, EmbeddingResponse, Usage, WattfareInfo


def usage_block(usage: Usage | None, cost_usd: Decimal | None) -> dict[str, Any] | None:
    """LiteLLM's usage dict (token counts, details, and `cost` in USD) for Wattfare's usage and charge."""
    if usage is None and cost_usd is None:
        return None
    block: dict[str, Any] = (usage or Usage()).model_dump(mode="json", exclude_none=True)
    cost = cost_usd if cost_usd is not None else (usage.cost if usage is not None else None)
    if cost is None:
        block.pop("cost", None)
    else:
        block["cost"] = float(cost)  # LiteLLM's unit; the exact amount stays in the headers
    return block


def wattfare_headers(info: WattfareInfo) -> dict[str, str]:
    """Wattfare's response headers (exact cost, budget left, request id, clamping) for what a completion carries."""
    headers: dict[str, str] = {}
    if info.cost_usd is not None:
        headers["wattfare-cost-usd"] = format(info.cost_usd, "f")
    if info.remaining_usd is not None:
        headers["wattfare-remaining-usd"] = format(info.remaining_usd, "f")
    if info.request_id:
        headers["wattfare-request-id"] = info.request_id
    if info.max_tokens is not None:
        headers["wattfare-max-tokens"] = str(info.max_tokens)
    if info.clamped is not None:
        headers["wattfare-clamped"] = "true" if info.clamped else "false"
    return headers


def wattfare_fields(info: WattfareInfo) -> dict[str, Any]:
    """What a stream reports as `provider_specific_fields["wattfare"]`: amounts as exact decimal strings."""
    return {
        "cost_usd": None if info.cost_usd is None else format(info.cost_usd, "f"),
        "remaining_usd": None if info.remaining_usd is None else format(info.remaining_usd, "f"),
        "request_id": info.request_id,
        "max_tokens": info.max_tokens,
        "clamped": info.clamped,
    }


def model_response(completion: ChatCompletion, into: ModelResponse) -> ModelResponse:
    """Fill LiteLLM's `ModelResponse` (the one LiteLLM handed the provider) from a Wattfare completion."""
    body = completion.model_dump(mode="json", exclude={"wattfare", "usage"}, exclude_none=True)
    usage = usage_block(completion.usage, completion.wattfare.cost_usd)
    if usage is not None:
        body["usage"] = usage
    converted: Any = convert_to_model_response_object(
        response_object=body,
        model_response_object=into,
        _response_headers=wattfare_headers(completion.wattfare),
    )
    return converted


def embedding_response(result: EmbeddingResponse, into: LiteLLMEmbeddingResponse) -> LiteLLMEmbeddingResponse:
    """Fill LiteLLM's `EmbeddingResponse` (the one LiteLLM handed the provider) from Wattfare's embeddings."""
    body = result.model_dump(mode="json", exclude={"wattfare", "usage"}, exclude_none=True)
    converted: Any = convert_to_model_response_object(
        response_object=body,
        model_response_object=into,
        response_type="embedding",
        _response_headers=wattfare_headers(result.wattfare),
    )
    # LiteLLM's embedding conversion keeps token counts only; the charge goes in as for a completion.
    usage: dict[str, Any] = {"completion_tokens": 0, "prompt_tokens": 0, "total_tokens": 0}
    if result.usage is not None:
        usage |= result.usage.model_dump(include={"prompt_tokens", "total_tokens"})
    if result.wattfare.cost_usd is not None:
        usage["cost"] = float(result.wattfare.cost_usd)  # LiteLLM's unit; the exact amount stays in the headers
    converted.usage = LiteLLMUsage(**usage)
    return converted
