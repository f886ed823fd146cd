"""Integer rates give exactly what plain Fraction arithmetic gives, for any prices and any usage.

`cost_of` and `decide_admission` run on `scaled_rates` (ints over a power-of-ten denominator) for speed;
the reference here is the textbook computation with `Fraction`, written independently of them.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from tests.core.metering.test_cap_guarantee import price_sets

from wattfare.metering import Allowed, Budget, MeteredUsage, PriceSet, cost_of, decide_admission
from wattfare.metering.rates import scaled_rates

counts = st.integers(min_value=0, max_value=2_000_000)
# Prices written with any number of decimals, as OpenRouter's strings may be ("0.000000075", "2.5e-7", "3").
odd_prices = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=-20, max_value=2),
)


def nanos(usd: Decimal | None) -> Fraction:
    return Fraction(0) if usd is None else Fraction(usd) * 10**9


def reference_cost(usage: MeteredUsage, p: PriceSet) -> int:
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    cached = min(prompt, usage.cached_prompt_tokens)
    written = min(prompt - cached, usage.cache_write_tokens)
    reasoning = min(completion, usage.reasoning_tokens)
    total = (
        (prompt - cached - written) * nanos(p.prompt)
        + cached * nanos(p.prompt if p.input_cache_read is None else p.input_cache_read)
        + written * nanos(p.prompt if p.input_cache_write is None else p.input_cache_write)
        + (completion - reasoning) * nanos(p.completion)
        + reasoning * nanos(p.completion if p.internal_reasoning is None else p.internal_reasoning)
        + nanos(p.request)
        + usage.images * nanos(p.image)
    )
    return math.floor(total + Fraction(1, 2))


@given(price_sets, counts, counts, counts, counts, counts, st.integers(min_value=0, max_value=50))
def test_cost_of_is_the_exact_fraction_result_rounded_half_up(
    prices: PriceSet, prompt: int, completion: int, cached: int, written: int, reasoning: int, images: int
) -> None:
    usage = MeteredUsage(prompt, completion, cached, written, reasoning, images=images)
    assert cost_of(usage, prices) == reference_cost(usage, prices)


@given(odd_prices, odd_prices, odd_prices, counts, counts)
def test_prices_with_any_number_of_decimals_scale_exactly(
    prompt: Decimal, completion: Decimal, request: Decimal, prompt_tokens: int, completion_tokens: int
) -> None:
    prices = PriceSet(prompt=prompt, completion=completion, request=request)
    rates = scaled_rates(prices)
    assert Fraction(rates.prompt, rates.denominator) == nanos(prompt)
    assert Fraction(rates.completion, rates.denominator) == nanos(completion)
    usage = MeteredUsage(prompt_tokens, completion_tokens)
    assert cost_of(usage, prices) == reference_cost(usage, prices)


@given(
    price_sets,
    st.integers(min_value=0, max_value=10**13),
    st.integers(min_value=0, max_value=100_000),
    st.one_of(st.none(), st.integers(min_value=0, max_value=200_000)),
    st.integers(min_value=0, max_value=10),
)
def test_a_hold_is_the_exact_worst_case_rounded_up(
    prices: PriceSet, remaining: int, bound: int, requested: int | None, images: int
) -> None:
    decision = decide_admission(
        Budget(cap=remaining, spent=0, reserved=0),
        prices,
        prompt_token_bound=bound,
        requested_max_tokens=requested,
        model_max_output=None,
        images=images,
    )
    fixed = bound * nanos(prices.prompt_ceiling) + nanos(prices.request) + images * nanos(prices.image)
    per_token = nanos(prices.completion_ceiling)
    if isinstance(decision, Allowed):
        tokens = decision.max_tokens or 0
        assert decision.reserve == math.ceil(fixed + tokens * per_token)
        assert decision.reserve <= remaining
        if per_token and requested is None:
            assert fixed + (tokens + 1) * per_token > remaining  # the clamp is the most the budget affords
    else:
        assert fixed + min(1, requested if requested is not None else 1) * per_token > remaining
