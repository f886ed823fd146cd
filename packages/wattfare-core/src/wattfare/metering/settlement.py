"""Settlement: what a finished request actually cost, and how much of it the ledger charges.

A settled charge replaces the request's reservation and never exceeds it: the reservation was
admitted under the cap, so charging at most that much keeps settled spend under the cap whatever the
upstream reports. Any excess is absorbed (the operator's loss), recorded apart from the member's spend.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattfare.metering.prices import PriceSet
from wattfare.metering.rates import scaled_rates

__all__ = ["Charge", "MeteredUsage", "charge_for", "cost_of"]


@dataclass(frozen=True, slots=True)
class MeteredUsage:
    """What one request used, in the OpenAI usage convention.

    Attributes:
        prompt_tokens: All prompt tokens, cached and cache-write ones included.
        completion_tokens: All completion tokens, reasoning ones included.
        cached_prompt_tokens: Prompt tokens read from the provider's cache.
        cache_write_tokens: Prompt tokens written to the provider's cache.
        reasoning_tokens: Completion tokens spent on reasoning.
        upstream_cost: The cost the upstream reported (OpenRouter's ``usage.cost``), in nano-USD, if any.
        images: Input images billed at the per-image price.
    """

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    upstream_cost: int | None = None
    images: int = 0


@dataclass(frozen=True, slots=True)
class Charge:
    """How a settled cost is booked.

    Attributes:
        charged: Nano-USD charged to the member's spend (at most the reservation).
        absorbed: Nano-USD above the reservation, absorbed by the operator.
    """

    charged: int
    absorbed: int


def cost_of(usage: MeteredUsage, prices: PriceSet) -> int:
    """The actual cost of a request in nano-USD, rounded half-up to the nano.

    The upstream's reported cost wins when there is one. Otherwise tokens are priced: cached prompt tokens
    at ``input_cache_read`` and cache-write tokens at ``input_cache_write`` when those are priced (else at
    ``prompt``), the other prompt tokens at ``prompt``; reasoning tokens at ``internal_reasoning`` when
    priced (they are part of ``completion_tokens``, never added on top), the rest at ``completion``; plus
    the per-request and per-image fees. Negative counts count as zero.

    Args:
        usage: What the request used.
        prices: The prices that applied (see `ModelPricing.at`).

    Returns:
        The cost in nano-USD.
    """
    if usage.upstream_cost is not None:
        return usage.upstream_cost
    prompt = max(0, usage.prompt_tokens)
    cached = min(prompt, max(0, usage.cached_prompt_tokens))
    written = min(prompt - cached, max(0, usage.cache_write_tokens))
    completion = max(0, usage.completion_tokens)
    reasoning = min(completion, max(0, usage.reasoning_tokens))

    rates = scaled_rates(prices)
    scaled = (
        (prompt - cached - written) * rates.prompt
        + cached * rates.cache_read
        + written * rates.cache_write
        + (completion - reasoning) * rates.completion
        + reasoning * rates.reasoning
        + rates.request
        + max(0, usage.images) * rates.image
    )
    # Half-up to the nano: every term is non-negative, so floor(x + 1/2) in integers.
    return (2 * scaled + rates.denominator) // (2 * rates.denominator)


def charge_for(actual: int, reserved: int) -> Charge:
    """Book an actual cost against the reservation it settles.

    Args:
        actual: The actual cost in nano-USD (see `cost_of`); a negative cost charges nothing.
        reserved: The reservation being settled, in nano-USD.

    Returns:
        The charge: at most ``reserved``, with any excess absorbed.

    Raises:
        ValueError: ``reserved`` is negative.
    """
    if reserved < 0:
        raise ValueError(f"a reservation must not be negative: {reserved}")
    cost = max(0, actual)
    charged = min(cost, reserved)
    return Charge(charged=charged, absorbed=cost - charged)
