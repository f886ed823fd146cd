"""Reading what a request used from the upstream's `usage` object (OpenAI wire, OpenRouter extensions)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

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
    cost = read.usd(u.get("cost"))
    # OpenRouter BYOK: `cost` is 0 and the provider's charge is upstream_inference_cost; otherwise the
    # latter is a breakdown of `cost` and adding it would double-charge.
    if u.get("is_byok") is True:
        byok = read.usd((as_object(u.get("cost_details")) or {}).get("upstream_inference_cost"))
        cost = (cost or 0) + (byok or 0)
    return MeteredUsage(
        prompt_tokens=read.count(u.get("prompt_tokens")),
        completion_tokens=read.count(u.get("completion_tokens")),
        cached_prompt_tokens=read.count(prompt_details.get("cached_tokens")),
        cache_write_tokens=read.count(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=read.count(completion_details.get("reasoning_tokens")),
        upstream_cost=cost,
        suspect=read.suspect,
    )
