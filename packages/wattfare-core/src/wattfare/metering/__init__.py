"""The pure metering domain: money, prices, budget windows, and the reserve/settle decisions.

Nothing here performs I/O or reads a clock: callers pass instants and budgets in, and get values back
(`Allowed` or `Refused`, a `Charge`). The cap guarantee rests on two facts proved by the tests: an
admitted hold fits under the cap, and a settled charge never exceeds its hold.

Typical flow in the proxy::

    pricing = parse_pricing(model["pricing"])
    bound = prompt_token_bound(body["messages"], body.get("tools"), body.get("response_format"))
    decision = decide_admission(
        budget,
        pricing.worst_case(now, bound),
        prompt_token_bound=bound,
        requested_max_tokens=body.get("max_tokens"),
        model_max_output=max_output,
    )
    ...
    usage = MeteredUsage(prompt_tokens=..., completion_tokens=..., upstream_cost=...)
    # ...and inside the store's settle transaction, against the counters as they are then:
    cost = cost_of(usage, pricing.at(now, usage.prompt_tokens))
    charge = charge_for(cost, held=decision.reserve, cap=cap, spent=spent)
"""

from __future__ import annotations

from wattfare.metering.admission import Allowed, Budget, Refused, decide_admission
from wattfare.metering.bounds import (
    BASE_TOKEN_ALLOWANCE,
    IMAGE_TOKEN_ALLOWANCE,
    PER_MESSAGE_TOKEN_ALLOWANCE,
    image_part_count,
    prompt_token_bound,
)
from wattfare.metering.caps import MAX_CAP, MAX_CAP_USD, cap_from_usd_text
from wattfare.metering.embeddings import (
    EMBEDDING_OUTPUT_TOKENS,
    PER_INPUT_TOKEN_ALLOWANCE,
    embedding_token_bound,
    trusted_embedding_usage,
)
from wattfare.metering.money import (
    NANOS_PER_USD,
    Rounding,
    nanos_to_json_number,
    nanos_to_usd,
    parse_usd,
    usd_to_nanos,
)
from wattfare.metering.prices import ModelPricing, PriceOverride, PriceSet, UnpricedModelError, parse_pricing
from wattfare.metering.settlement import Charge, MeteredUsage, charge_for, cost_of, trusted_usage
from wattfare.metering.thresholds import ALERT_CHOICES, THRESHOLDS, thresholds_crossed
from wattfare.metering.window import Window, window_containing, window_of_key

__all__ = [
    "ALERT_CHOICES",
    "BASE_TOKEN_ALLOWANCE",
    "EMBEDDING_OUTPUT_TOKENS",
    "IMAGE_TOKEN_ALLOWANCE",
    "MAX_CAP",
    "MAX_CAP_USD",
    "NANOS_PER_USD",
    "PER_INPUT_TOKEN_ALLOWANCE",
    "PER_MESSAGE_TOKEN_ALLOWANCE",
    "THRESHOLDS",
    "Allowed",
    "Budget",
    "Charge",
    "MeteredUsage",
    "ModelPricing",
    "PriceOverride",
    "PriceSet",
    "Refused",
    "Rounding",
    "UnpricedModelError",
    "Window",
    "cap_from_usd_text",
    "charge_for",
    "cost_of",
    "decide_admission",
    "embedding_token_bound",
    "image_part_count",
    "nanos_to_json_number",
    "nanos_to_usd",
    "parse_pricing",
    "parse_usd",
    "prompt_token_bound",
    "thresholds_crossed",
    "trusted_embedding_usage",
    "trusted_usage",
    "usd_to_nanos",
    "window_containing",
    "window_of_key",
]
