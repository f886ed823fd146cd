"""Reading what a request used from the upstream's `usage` object (OpenAI wire, OpenRouter extensions).

A chat completion's usage counts prompt and completion tokens; an embedding request's counts its input as
`prompt_tokens` (and `total_tokens`, the same number). Both may carry OpenRouter's `cost`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from wattfare.metering import MeteredUsage, usd_to_nanos
from wattfare.server.json_value import as_object


class _Reading:
    """Reads counts and amounts out of one usage object, remembering whether any was impossible."""

    __slots__ = ("suspect",)

    def __init__(self) -> None:
        self.suspect = False

    def count(self, value: object) -> int:
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        # Negative, fractional or not a number: no real usage looks like this, so none of it is believed.
        self.suspect = True
        return 0

    def usd(self, value: object) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.suspect = True
            return None
        try:
            # The upstream's JSON number arrives as a float; its shortest repr is the decimal it wrote.
            amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            self.suspect = True
            return None
        if not amount.is_finite() or amount < 0:
            self.suspect = True
            return None
        return usd_to_nanos(amount, rounding="half_up")


def metered_usage(usage: object) -> MeteredUsage | None:
    """The usage to meter, or None when the object is absent or carries no token counts.

    A count or cost no real request has (negative, fractional, unreadable) marks the usage `suspect`: the
    meter then charges the bound of what was relayed rather than read it as a discount (`trusted_usage`).
    """
    u = as_object(usage)
    if u is None or ("prompt_tokens" not in u and "completion_tokens" not in u):
        return None
    prompt_details = as_object(u.get("prompt_tokens_details")) or {}
    completion_details = as_object(u.get("completion_tokens_details")) or {}
    read = _Reading()
    cost = _reported_cost(read, u)
    return MeteredUsage(
        prompt_tokens=read.count(u.get("prompt_tokens")),
        completion_tokens=read.count(u.get("completion_tokens")),
        cached_prompt_tokens=read.count(prompt_details.get("cached_tokens")),
        cache_write_tokens=read.count(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=read.count(completion_details.get("reasoning_tokens")),
        upstream_cost=cost,
        suspect=read.suspect,
    )


def embedding_usage(usage: object) -> MeteredUsage | None:
    """The usage of an embedding request: its input tokens (`prompt_tokens`, else `total_tokens`), nothing written.

    None when the object is absent or carries no token count; impossible numbers mark it `suspect`, as for chat.
    """
    u = as_object(usage)
    counted = None if u is None else u.get("prompt_tokens")
    if counted is None and u is not None:
        counted = u.get("total_tokens")
    if u is None or counted is None:
        return None
    read = _Reading()
    cost = _reported_cost(read, u)
    tokens = read.count(counted)
    return MeteredUsage(prompt_tokens=tokens, completion_tokens=0, upstream_cost=cost, suspect=read.suspect)


def _reported_cost(read: _Reading, usage: dict[str, Any]) -> int | None:
    """OpenRouter's `usage.cost`, in nano-USD (None when the upstream reported none)."""
    cost = read.usd(usage.get("cost"))
    # OpenRouter BYOK: `cost` is 0 and the provider's charge is upstream_inference_cost; otherwise the
    # latter is a breakdown of `cost` and adding it would double-charge.
    if usage.get("is_byok") is True:
        byok = read.usd((as_object(usage.get("cost_details")) or {}).get("upstream_inference_cost"))
        cost = (cost or 0) + (byok or 0)
    return cost
