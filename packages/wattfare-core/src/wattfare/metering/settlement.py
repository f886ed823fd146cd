"""Settlement: what a finished request actually cost, and how much of it the ledger charges.

A settled charge replaces the request's hold and never exceeds it, nor the cap in force when it
settles: the hold was admitted under the cap, so charging at most that much keeps settled spend
under the cap whatever the upstream reports. Any excess is absorbed (the operator's loss), recorded apart
from the member's spend. `charge_for` is that rule, and both stores run it inside their settle transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattfare.metering.prices import PriceSet
from wattfare.metering.rates import scaled_rates

__all__ = ["Charge", "MeteredUsage", "charge_for", "cost_of", "trusted_usage"]


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
        suspect: The upstream reported something no real usage has (a negative or fractional count, a
            negative or unreadable cost): see `trusted_usage`.
    """

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    upstream_cost: int | None = None
    images: int = 0
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class Charge:
    """How a settled cost is booked.

    Attributes:
        charged: Nano-USD charged to the member's spend (at most the hold).
        absorbed: Nano-USD above the hold, absorbed by the operator.
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


def charge_for(cost: int, *, held: int, cap: int, spent: int) -> Charge:
    """Book a finished request's cost against its hold: the settlement rule every store runs.

    Never more than was held (the hold was admitted with ``spent + reserved + held <= cap``), and never past
    the cap in force now: a member may have lowered it while the request ran. What the cost exceeds that by
    is absorbed, the operator's loss, recorded apart from the member's spend.

    Args:
        cost: The request's cost in nano-USD (see `cost_of` and `trusted_usage`); a negative cost charges nothing.
        held: The hold being settled, in nano-USD.
        cap: The connection's cap in force at settlement, in nano-USD.
        spent: What the window had settled before this request, in nano-USD.

    Returns:
        The charge: at most ``held`` and at most ``cap - spent``, with any excess absorbed.

    Raises:
        ValueError: ``held`` is negative.
    """
    if held < 0:
        raise ValueError(f"a hold must not be negative: {held}")
    cost = max(0, cost)
    charged = min(cost, held, max(0, cap - spent))
    return Charge(charged=charged, absorbed=cost - charged)


def trusted_usage(usage: MeteredUsage, *, relayed_bytes: int) -> bool:
    """Whether an upstream's reported usage may be charged as it stands.

    Reported usage is a claim by the upstream, and a wrong one must never become a discount. It is not
    trusted when the upstream reported a count or cost that cannot be (negative, not a whole number: see
    ``MeteredUsage.suspect``), or when the answer carried text yet claims no completion tokens (every
    token the model wrote is at least one token). Untrusted usage is charged at the bound of what was
    relayed instead (`worst_case` prices over the prompt bound and the relayed bytes).

    Args:
        usage: The usage the upstream reported.
        relayed_bytes: UTF-8 bytes of the text the answer carried to the client.

    Returns:
        True when ``usage`` may be priced with `cost_of`.
    """
    if usage.suspect:
        return False
    return not (relayed_bytes > 0 and usage.completion_tokens <= 0)
