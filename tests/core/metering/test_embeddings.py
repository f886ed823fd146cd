"""Embedding requests in the pure domain: the input bound, their admission through `decide_admission`, and trust.

The admission is the very call the meter makes for an embedding (`requested_max_tokens=EMBEDDING_OUTPUT_TOKENS`), so
these properties are about production's decision: the hold is the input bound at the highest prompt rate plus the
request fee whatever else the model or the app says, it fits under the cap, it covers any usage up to the bound,
and `budget_exceeded` / `budget_busy` split as they do for chat.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import (
    EMBEDDING_OUTPUT_TOKENS,
    PER_INPUT_TOKEN_ALLOWANCE,
    Allowed,
    Budget,
    MeteredUsage,
    PriceSet,
    Refused,
    charge_for,
    cost_of,
    decide_admission,
    embedding_token_bound,
    trusted_embedding_usage,
)
from wattfare.metering.rates import scaled_rates

prices_usd = st.one_of(
    st.just(Decimal(0)), st.integers(min_value=1, max_value=10**9).map(lambda n: Decimal(n).scaleb(-12))
)
optional_prices = st.one_of(st.none(), prices_usd)
# Embedding prices as OpenRouter lists them (completion 0) and odd ones (a completion price must change nothing).
price_sets = st.builds(
    PriceSet,
    prompt=prices_usd,
    completion=prices_usd,
    request=st.one_of(st.just(Decimal(0)), prices_usd),
    input_cache_read=optional_prices,
    input_cache_write=optional_prices,
    audio=optional_prices,
)
nanos = st.integers(min_value=0, max_value=10**11)
texts = st.text(min_size=1, max_size=40)
token_arrays = st.lists(st.integers(min_value=0, max_value=2**31 - 1), min_size=1, max_size=40)
inputs = st.one_of(st.lists(texts, min_size=1, max_size=8), st.lists(token_arrays, min_size=1, max_size=8))


@st.composite
def budgets(draw: st.DrawFn) -> Budget:
    cap = draw(nanos)
    spent = draw(st.integers(min_value=0, max_value=cap + cap // 10))
    reserved = draw(st.integers(min_value=0, max_value=max(0, cap - spent) + 10))
    return Budget(cap=cap, spent=spent, reserved=reserved)


def admit(budget: Budget, prices: PriceSet, bound: int, **others: int | None) -> Allowed | Refused:
    """The meter's call for an embedding request (the model's output ceiling and the allowance vary in `others`)."""
    return decide_admission(
        budget,
        prices,
        prompt_token_bound=bound,
        requested_max_tokens=EMBEDDING_OUTPUT_TOKENS,
        model_max_output=others.get("model_max_output"),
        output_allowance=others.get("output_allowance"),
    )


def input_part(prices: PriceSet, bound: int) -> int:
    """The bound at the highest prompt rate, plus the request fee, rounded up to the nano (exact arithmetic)."""
    rates = scaled_rates(prices)
    return -(-(bound * rates.prompt_ceiling + rates.request) // rates.denominator)


# -- the bound


def test_a_string_is_bounded_by_its_utf8_bytes_and_a_token_array_by_its_length() -> None:
    allowance = PER_INPUT_TOKEN_ALLOWANCE
    assert embedding_token_bound(["hello"]) == 5 + allowance
    assert embedding_token_bound(["héllo", "日本"]) == 6 + 6 + 2 * allowance
    assert embedding_token_bound([[1, 2, 3], [4]]) == 4 + 2 * allowance
    assert embedding_token_bound(["\ud800"]) == 3 + allowance  # a lone surrogate still occupies three bytes


def test_anything_else_is_not_an_input() -> None:
    with pytest.raises(TypeError):
        embedding_token_bound([3.5])  # type: ignore[list-item]


@given(items=inputs)
def test_the_bound_covers_every_byte_level_tokenization(items: list[str] | list[list[int]]) -> None:
    # No byte-level token is shorter than a byte, and a model adds at most the allowance around each input.
    tokens = sum(len(item.encode("utf-8", "surrogatepass")) if isinstance(item, str) else len(item) for item in items)
    assert embedding_token_bound(items) == tokens + PER_INPUT_TOKEN_ALLOWANCE * len(items)


@given(items=inputs, more=inputs)
def test_the_bound_of_a_batch_is_the_sum_of_its_parts(items: list[object], more: list[object]) -> None:
    assert embedding_token_bound([*items, *more]) == embedding_token_bound(items) + embedding_token_bound(more)  # type: ignore[list-item]


# -- admission: the same decision as chat, with nothing to write


@given(
    budget=budgets(),
    prices=price_sets,
    bound=st.integers(min_value=0, max_value=10**6),
    model_max_output=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    output_allowance=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
)
def test_an_admitted_embedding_holds_exactly_its_input_and_fits_the_cap(
    budget: Budget, prices: PriceSet, bound: int, model_max_output: int | None, output_allowance: int | None
) -> None:
    decision = admit(budget, prices, bound, model_max_output=model_max_output, output_allowance=output_allowance)
    needed = input_part(prices, bound)

    if isinstance(decision, Allowed):
        assert decision.reserve == needed
        assert decision.max_tokens == 0
        assert decision.clamped is False
        assert budget.spent + budget.reserved + decision.reserve <= budget.cap
    elif budget.spent + budget.reserved > budget.cap or needed > budget.cap - budget.spent:
        # This month's spend (or a lowered cap) leaves no room for the input: exceeded, not busy.
        assert decision.code == "budget_exceeded"
    else:
        # The spend affords it; holds in flight are in the way.
        assert decision.code == "budget_busy"
        assert budget.reserved > 0
        assert needed > budget.remaining


@given(
    budget=budgets(),
    prices=price_sets,
    bound=st.integers(min_value=0, max_value=10**6),
    data=st.data(),
)
def test_any_usage_within_the_bound_costs_no_more_than_the_hold(
    budget: Budget, prices: PriceSet, bound: int, data: st.DataObject
) -> None:
    decision = admit(budget, prices, bound)
    if not isinstance(decision, Allowed):
        return
    tokens = data.draw(st.integers(min_value=0, max_value=bound))
    cost = cost_of(MeteredUsage(prompt_tokens=tokens, completion_tokens=0), prices)
    assert cost <= decision.reserve
    charge = charge_for(cost, held=decision.reserve, cap=budget.cap, spent=budget.spent)
    assert (charge.charged, charge.absorbed) == (cost, 0)
    assert budget.spent + charge.charged <= budget.cap


def test_a_cheap_model_admits_what_an_output_allowance_would_not() -> None:
    # 10 input tokens at 1,000 nanos each: the hold is 10,000 nanos, not 10,000 plus a 4,096-token answer.
    prices = PriceSet(prompt=Decimal("0.000001"), completion=Decimal("0.00001"))
    decision = admit(Budget(cap=10_000, spent=0, reserved=0), prices, 10, output_allowance=4096)
    assert decision == Allowed(reserve=10_000, max_tokens=0, clamped=False)
    assert admit(Budget(cap=9_999, spent=0, reserved=0), prices, 10) == Refused(
        "budget_exceeded", needed=10_000, remaining=9_999
    )
    assert admit(Budget(cap=10_000, spent=0, reserved=1), prices, 10) == Refused(
        "budget_busy", needed=10_000, remaining=9_999
    )


# -- trusting the upstream's usage


@pytest.mark.parametrize(
    ("usage", "inputs", "trusted"),
    [
        (MeteredUsage(prompt_tokens=12, completion_tokens=0), 3, True),
        (MeteredUsage(prompt_tokens=3, completion_tokens=0), 3, True),
        (MeteredUsage(prompt_tokens=2, completion_tokens=0), 3, False),  # fewer tokens than inputs
        (MeteredUsage(prompt_tokens=0, completion_tokens=0), 1, False),
        (MeteredUsage(prompt_tokens=0, completion_tokens=0, upstream_cost=0), 1, False),
        (MeteredUsage(prompt_tokens=9, completion_tokens=0, upstream_cost=123), 2, True),
        (MeteredUsage(prompt_tokens=9, completion_tokens=0, suspect=True), 2, False),
    ],
)
def test_usage_is_believed_only_when_it_counts_a_token_per_input(
    usage: MeteredUsage, inputs: int, trusted: bool
) -> None:
    assert trusted_embedding_usage(usage, inputs=inputs) is trusted
