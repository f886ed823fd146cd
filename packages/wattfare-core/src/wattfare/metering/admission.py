"""Admission decisions: may this request start, how much to hold, and how long an answer to allow.

Before a request goes upstream, its worst-case cost is reserved against the budget, and it is
admitted only if ``spent + reserved + worst <= cap``. The worst case is the prompt-token bound at the
highest rate a prompt token can bill at, plus ``max_tokens`` at the highest completion rate, plus the
per-request and per-image fees. All arithmetic is exact; the hold is rounded up to the nano.

How long an answer to allow: the client's ``max_tokens``, else the output allowance (per app, with a
server default far below a model's maximum, so parallel requests fit under one cap), never past the
model's own maximum. Three outcomes when that does not fit what is left:

- this month's *spend* leaves room for less than that answer: ``max_tokens`` is lowered to what the
  spend affords (``clamped``, and the response says so), or, below a minimal answer, ``budget_exceeded``;
- the spend leaves room but other requests in flight hold it: ``budget_busy``. The request is never cut to
  the crumbs others' holds leave; it waits for them (they mostly settle for far less than they hold) or is
  refused as retryable. Busy never happens without holds in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wattfare.metering.prices import PriceSet
from wattfare.metering.rates import scaled_rates

__all__ = ["Allowed", "Budget", "Refused", "decide_admission"]


@dataclass(frozen=True, slots=True)
class Budget:
    """A connection's budget in the current window, in nano-USD.

    Attributes:
        cap: The window's cap.
        spent: What settled requests have been charged.
        reserved: What in-flight requests hold.
    """

    cap: int
    spent: int
    reserved: int

    def __post_init__(self) -> None:
        if self.cap < 0 or self.spent < 0 or self.reserved < 0:
            raise ValueError(f"budget amounts must not be negative: {self}")

    @property
    def remaining(self) -> int:
        """What a new hold may still hold: ``max(0, cap - spent - reserved)``."""
        return max(0, self.cap - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class Allowed:
    """The request may go upstream.

    Attributes:
        reserve: Nano-USD to hold until settlement: the worst-case cost, rounded up.
        max_tokens: The ``max_tokens`` to send upstream; ``None`` only when completions are free and the
            client sent none.
        clamped: True when ``max_tokens`` is lower than the request would otherwise get (the client's value,
            else the output allowance, within the model's maximum) because of this window's spend; with no
            limit known at all, whenever the budget set it.
    """

    reserve: int
    max_tokens: int | None
    clamped: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """The request cannot start now.

    Attributes:
        code: ``budget_exceeded`` when this window's spend cannot afford even a minimal answer;
            ``budget_busy`` when the spend could afford the answer but holds of requests in flight are in the way.
        needed: The worst-case cost, in nano-USD, of the smallest answer that could be admitted.
        remaining: What the budget had left, in nano-USD.
    """

    code: Literal["budget_exceeded", "budget_busy"]
    needed: int
    remaining: int


def decide_admission(
    budget: Budget,
    prices: PriceSet,
    *,
    prompt_token_bound: int,
    requested_max_tokens: int | None,
    model_max_output: int | None,
    output_allowance: int | None = None,
    min_completion_tokens: int = 1,
    images: int = 0,
) -> Allowed | Refused:
    """Decide whether a request fits the budget, what to reserve and which ``max_tokens`` to send.

    For an `Allowed`, ``budget.spent + budget.reserved + reserve <= budget.cap``, and any usage with at most
    ``prompt_token_bound`` prompt tokens, at most ``max_tokens`` completion tokens and at most ``images``
    images costs no more than ``reserve`` under `cost_of` with the same prices. A budget already over its
    cap (the cap was lowered) admits nothing, not even a free request. A `Refused` ``budget_busy`` only
    happens with ``budget.reserved > 0``: without holds in flight the same request is admitted or exceeded.

    Args:
        budget: The connection's budget in the current window.
        prices: The prices to reserve at; use `ModelPricing.worst_case` for the prompt-token bound.
        prompt_token_bound: An upper bound on the prompt tokens (see `prompt_token_bound`).
        requested_max_tokens: The client's ``max_tokens`` (or ``max_completion_tokens``), if it sent one.
        model_max_output: The model's maximum output tokens, if known.
        output_allowance: The answer to allow when the client sent no ``max_tokens``, if any.
        min_completion_tokens: The smallest answer worth starting; below it the request is denied.
        images: How many input images the per-image price applies to.

    Returns:
        `Allowed` with the hold and ``max_tokens``, or `Refused` (see the module docstring).

    Raises:
        ValueError: A count is negative.
    """
    for name, count in (
        ("prompt_token_bound", prompt_token_bound),
        ("requested_max_tokens", requested_max_tokens),
        ("model_max_output", model_max_output),
        ("output_allowance", output_allowance),
        ("min_completion_tokens", min_completion_tokens),
        ("images", images),
    ):
        if count is not None and count < 0:
            raise ValueError(f"{name} must not be negative: {count}")

    remaining = budget.remaining
    # What the window's spend alone leaves, were no other request in flight.
    headroom = max(0, budget.cap - budget.spent)
    over_cap = budget.spent + budget.reserved > budget.cap
    # Exact arithmetic in units of 1/denominator nano-USD (see `scaled_rates`).
    rates = scaled_rates(prices)
    unit = rates.denominator
    fixed = prompt_token_bound * rates.prompt_ceiling + rates.request + images * rates.image
    per_token = rates.completion_ceiling
    wanted = requested_max_tokens if requested_max_tokens is not None else output_allowance
    limits = [limit for limit in (wanted, model_max_output) if limit is not None]
    limit = min(limits) if limits else None
    if per_token == 0:
        # Free output cannot run past the cap, so the client's choice (within the model's limit) stands.
        max_tokens = None if requested_max_tokens is None else limit
        reserve = _nanos_up(fixed, unit)
        if over_cap or reserve > headroom:
            return Refused("budget_exceeded", needed=reserve, remaining=remaining)
        if reserve > remaining:
            return Refused("budget_busy", needed=reserve, remaining=remaining)
        return Allowed(reserve=reserve, max_tokens=max_tokens, clamped=False)

    def affordable(amount: int) -> int:
        """The most completion tokens `amount` nano-USD pays for beside the fixed part (-1: not even that)."""
        left = amount * unit - fixed
        return -1 if left < 0 else left // per_token

    smallest = min_completion_tokens if limit is None else min(min_completion_tokens, limit)
    by_spend = affordable(headroom)
    if over_cap or by_spend < smallest:
        needed = _nanos_up(fixed + smallest * per_token, unit)
        return Refused("budget_exceeded", needed=needed, remaining=remaining)
    # The answer to start: the limit, lowered only as far as this window's spend requires.
    max_tokens = by_spend if limit is None else min(limit, by_spend)
    # ceil(x) <= remaining iff x <= remaining, as remaining is whole: the rounded hold still fits.
    reserve = _nanos_up(fixed + max_tokens * per_token, unit)
    if reserve > remaining:
        return Refused("budget_busy", needed=reserve, remaining=remaining)
    clamped = limit is None or max_tokens < limit
    return Allowed(reserve=reserve, max_tokens=max_tokens, clamped=clamped)


def _nanos_up(scaled: int, unit: int) -> int:
    """``scaled / unit`` nano-USD rounded up to a whole nano (holds round up)."""
    return -(-scaled // unit)
