"""Reservation decisions: may this request start, how much to hold, and how long an answer to allow.

Before a request goes upstream, its worst-case cost is reserved against the budget, and it is
admitted only if ``spent + reserved + worst <= cap``. The worst case is the prompt-token bound at the
highest rate a prompt token can bill at, plus ``max_tokens`` at the highest completion rate, plus the
per-request and per-image fees. When the client asked for no ``max_tokens``, or for more than the
budget affords, ``max_tokens`` is lowered to what remains affordable, so the upstream cannot run past
the cap. All arithmetic is exact; the reservation is rounded up to the nano.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wattfare.metering.prices import PriceSet
from wattfare.metering.rates import scaled_rates

__all__ = ["Allowed", "Budget", "Denied", "decide_reservation"]


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
        """What a new reservation may still hold: ``max(0, cap - spent - reserved)``."""
        return max(0, self.cap - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class Allowed:
    """The request may go upstream.

    Attributes:
        reserve: Nano-USD to hold until settlement: the worst-case cost, rounded up.
        max_tokens: The ``max_tokens`` to send upstream; ``None`` only when completions are free and the
            client sent none.
        clamped: True when ``max_tokens`` is lower than the request would otherwise allow: the client's
            value, else the model's maximum output (and, with neither known, whenever the budget set it).
    """

    reserve: int
    max_tokens: int | None
    clamped: bool


@dataclass(frozen=True, slots=True)
class Denied:
    """The budget cannot afford even a minimal answer.

    Attributes:
        code: The error code for the wire.
        needed: The worst-case cost, in nano-USD, of the smallest answer that could be admitted.
        remaining: What the budget had left, in nano-USD.
    """

    code: Literal["budget_exceeded"]
    needed: int
    remaining: int


def decide_reservation(
    budget: Budget,
    prices: PriceSet,
    *,
    prompt_token_bound: int,
    requested_max_tokens: int | None,
    model_max_output: int | None,
    min_completion_tokens: int = 1,
    images: int = 0,
) -> Allowed | Denied:
    """Decide whether a request fits the budget, what to reserve and which ``max_tokens`` to send.

    For an `Allowed`, ``budget.spent + budget.reserved + reserve <= budget.cap``, and any usage with at most
    ``prompt_token_bound`` prompt tokens, at most ``max_tokens`` completion tokens and at most ``images``
    images costs no more than ``reserve`` under `cost_of` with the same prices. A budget already over its
    cap (the cap was lowered) admits nothing, not even a free request.

    Args:
        budget: The connection's budget in the current window.
        prices: The prices to reserve at; use `ModelPricing.worst_case` for the prompt-token bound.
        prompt_token_bound: An upper bound on the prompt tokens (see `prompt_token_bound`).
        requested_max_tokens: The client's ``max_tokens`` (or ``max_completion_tokens``), if it sent one.
        model_max_output: The model's maximum output tokens, if known.
        min_completion_tokens: The smallest answer worth starting; below it the request is denied.
        images: How many input images the per-image price applies to.

    Returns:
        `Allowed` with the reservation and ``max_tokens``, or `Denied` when even
        ``min_completion_tokens`` (or the client's smaller ``max_tokens``) is not affordable.

    Raises:
        ValueError: A count is negative.
    """
    for name, count in (
        ("prompt_token_bound", prompt_token_bound),
        ("requested_max_tokens", requested_max_tokens),
        ("model_max_output", model_max_output),
        ("min_completion_tokens", min_completion_tokens),
        ("images", images),
    ):
        if count is not None and count < 0:
            raise ValueError(f"{name} must not be negative: {count}")

    remaining = budget.remaining
    over_cap = budget.spent + budget.reserved > budget.cap
    # Exact arithmetic in units of 1/denominator nano-USD (see `scaled_rates`).
    rates = scaled_rates(prices)
    unit = rates.denominator
    fixed = prompt_token_bound * rates.prompt_ceiling + rates.request + images * rates.image
    per_token = rates.completion_ceiling
    limits = [limit for limit in (requested_max_tokens, model_max_output) if limit is not None]
    limit = min(limits) if limits else None
    if per_token == 0:
        # Free output cannot run past the cap, so the client's choice (within the model's limit) stands.
        max_tokens = None if requested_max_tokens is None else limit
        reserve = _nanos_up(fixed, unit)
        if over_cap or reserve > remaining:
            return Denied("budget_exceeded", needed=reserve, remaining=remaining)
        clamped = requested_max_tokens is not None and max_tokens is not None and max_tokens < requested_max_tokens
        return Allowed(reserve=reserve, max_tokens=max_tokens, clamped=clamped)
    left = remaining * unit - fixed
    affordable = -1 if left < 0 else left // per_token  # the most tokens `left` pays for
    smallest = min_completion_tokens if limit is None else min(min_completion_tokens, limit)
    if over_cap or affordable < smallest:
        needed = _nanos_up(fixed + smallest * per_token, unit)
        return Denied("budget_exceeded", needed=needed, remaining=remaining)
    max_tokens = affordable if limit is None else min(limit, affordable)
    # ceil(x) <= remaining iff x <= remaining, as remaining is whole: the rounded hold still fits.
    reserve = _nanos_up(fixed + max_tokens * per_token, unit)
    if requested_max_tokens is not None:
        clamped = max_tokens < requested_max_tokens
    else:
        clamped = model_max_output is None or max_tokens < model_max_output
    return Allowed(reserve=reserve, max_tokens=max_tokens, clamped=clamped)


def _nanos_up(scaled: int, unit: int) -> int:
    """``scaled / unit`` nano-USD rounded up to a whole nano (reservations round up)."""
    return -(-scaled // unit)
