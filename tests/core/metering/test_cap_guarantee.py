"""The cap guarantee, tested as properties: holds fit under the cap and cover any usage they admit,
and no interleaving of reserve / settle / expire ever lets settled spend pass the cap."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wattfare.metering import (
    Allowed,
    Budget,
    MeteredUsage,
    PriceSet,
    Refused,
    charge_for,
    cost_of,
    decide_admission,
)

# USD per unit from 0 to 1e-3 (o1-pro's output is 6e-4), with exact zeros and sub-nano prices likely.
prices_usd = st.one_of(
    st.just(Decimal(0)),
    st.integers(min_value=1, max_value=10**9).map(lambda n: Decimal(n).scaleb(-12)),
)
optional_prices = st.one_of(st.none(), prices_usd)
price_sets = st.builds(
    PriceSet,
    prompt=prices_usd,
    completion=prices_usd,
    request=st.one_of(st.just(Decimal(0)), prices_usd),
    image=st.one_of(st.just(Decimal(0)), prices_usd),
    input_cache_read=optional_prices,
    input_cache_write=optional_prices,
    internal_reasoning=optional_prices,
    input_cache_write_1h=optional_prices,
    audio=optional_prices,
)
token_counts = st.integers(min_value=0, max_value=200_000)
optional_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=200_000))
nanos = st.integers(min_value=0, max_value=10**11)  # up to $100


@st.composite
def budgets(draw: st.DrawFn) -> Budget:
    cap = draw(nanos)
    # Mostly within the cap, sometimes over it (the member lowered the cap after spending).
    spent = draw(st.integers(min_value=0, max_value=cap + cap // 10))
    reserved = draw(st.integers(min_value=0, max_value=max(0, cap - spent) + 10))
    return Budget(cap=cap, spent=spent, reserved=reserved)


@st.composite
def usages_within(draw: st.DrawFn, prompt_bound: int, max_tokens: int, images: int) -> MeteredUsage:
    """Any usage a hold for these limits admits: prompt within the bound, completion within max_tokens."""
    prompt = draw(st.one_of(st.just(prompt_bound), st.integers(min_value=0, max_value=prompt_bound)))
    cached = draw(st.integers(min_value=0, max_value=prompt))
    written = draw(st.integers(min_value=0, max_value=prompt - cached))
    completion = draw(st.one_of(st.just(max_tokens), st.integers(min_value=0, max_value=max_tokens)))
    reasoning = draw(st.integers(min_value=0, max_value=completion))
    return MeteredUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
        images=draw(st.integers(min_value=0, max_value=images)),
    )


def worst_case_nanos(prices: PriceSet, prompt_bound: int, completion: int, images: int) -> Decimal:
    """An independent exact computation of a worst case, for checking the decision's arithmetic."""
    prompt_rates = [prices.prompt, prices.input_cache_read, prices.input_cache_write, prices.input_cache_write_1h]
    prompt_rate = max(rate for rate in [*prompt_rates, prices.audio] if rate is not None)
    completion_rate = max(rate for rate in (prices.completion, prices.internal_reasoning) if rate is not None)
    with localcontext() as context:
        context.prec = 200
        usd = prompt_bound * prompt_rate + completion * completion_rate + prices.request + images * prices.image
        return usd * 10**9


@given(
    budgets(),
    price_sets,
    token_counts,
    optional_counts,
    optional_counts,
    optional_counts,
    st.integers(min_value=0, max_value=64),
    st.integers(min_value=0, max_value=4),
    st.data(),
)
@settings(max_examples=400)
def test_an_allowed_hold_fits_the_cap_and_covers_every_usage_it_admits(
    budget: Budget,
    prices: PriceSet,
    bound: int,
    requested: int | None,
    allowance: int | None,
    model_max: int | None,
    min_tokens: int,
    images: int,
    data: st.DataObject,
) -> None:
    decision = decide_admission(
        budget,
        prices,
        prompt_token_bound=bound,
        requested_max_tokens=requested,
        model_max_output=model_max,
        output_allowance=allowance,
        min_completion_tokens=min_tokens,
        images=images,
    )
    without_holds = decide_admission(
        Budget(cap=budget.cap, spent=budget.spent, reserved=0),
        prices,
        prompt_token_bound=bound,
        requested_max_tokens=requested,
        model_max_output=model_max,
        output_allowance=allowance,
        min_completion_tokens=min_tokens,
        images=images,
    )
    if isinstance(decision, Refused):
        assert decision.remaining == budget.remaining
        assert decision.needed > decision.remaining or budget.spent + budget.reserved > budget.cap
        if decision.code == "budget_busy":
            # Busy means the holds in flight are in the way: without them the same request is admitted.
            assert budget.reserved > 0
            assert isinstance(without_holds, Allowed)
            assert without_holds.reserve == decision.needed
        else:
            assert isinstance(without_holds, Refused) or budget.spent + budget.reserved > budget.cap
        return
    # Holds in flight never change the answer a request gets: they can only make it wait.
    assert decision == without_holds

    assert budget.spent + budget.reserved + decision.reserve <= budget.cap
    assert decision.reserve >= 0
    wanted = requested if requested is not None else allowance
    limits = [limit for limit in (wanted, model_max) if limit is not None]
    if decision.max_tokens is None:
        assert requested is None
        assert prices.completion == 0
        assert prices.internal_reasoning in (None, 0)
        completion_bound = 0
    else:
        # The max_tokens sent upstream is covered by the hold (checked below with every usage it admits).
        completion_bound = decision.max_tokens
        assert not limits or decision.max_tokens <= min(limits)
        if limits:
            assert decision.clamped == (decision.max_tokens < min(limits))
        else:
            assert decision.clamped
        if decision.clamped:
            # Clamped by this month's spend: one more token would not have fitted under the cap.
            assert worst_case_nanos(prices, bound, decision.max_tokens + 1, images) > budget.cap - budget.spent
    assert decision.reserve >= worst_case_nanos(prices, bound, completion_bound, images)

    usage = data.draw(usages_within(bound, completion_bound, images))
    assert cost_of(usage, prices) <= decision.reserve


@given(budgets(), price_sets, token_counts, st.integers(min_value=0, max_value=4))
def test_a_budget_left_to_decide_max_tokens_is_used_to_the_last_affordable_token(
    budget: Budget, prices: PriceSet, bound: int, images: int
) -> None:
    decision = decide_admission(
        budget, prices, prompt_token_bound=bound, requested_max_tokens=None, model_max_output=None, images=images
    )
    if isinstance(decision, Allowed) and decision.max_tokens is not None:
        assert worst_case_nanos(prices, bound, decision.max_tokens, images) <= budget.remaining
        assert worst_case_nanos(prices, bound, decision.max_tokens + 1, images) > budget.remaining


@dataclass(frozen=True)
class Hold:
    reserve: int
    prices: PriceSet
    prompt_bound: int
    max_tokens: int
    images: int


class OneBudgetUnderLoad(RuleBasedStateMachine):
    """Random interleavings of the proxy's moves over one connection's budget, as the store performs them."""

    def __init__(self) -> None:
        super().__init__()
        self.cap = 0
        self.spent = 0
        self.reserved = 0
        self.holds: list[Hold] = []
        self.absorbed = 0
        self.lowered = False
        self.settled_over_cap = 0

    @initialize(cap=nanos)
    def open_the_window(self, cap: int) -> None:
        self.cap = cap

    @rule(
        prices=price_sets,
        bound=token_counts,
        requested=optional_counts,
        model_max=optional_counts,
        images=st.integers(min_value=0, max_value=3),
    )
    def reserve(self, prices: PriceSet, bound: int, requested: int | None, model_max: int | None, images: int) -> None:
        decision = decide_admission(
            Budget(cap=self.cap, spent=self.spent, reserved=self.reserved),
            prices,
            prompt_token_bound=bound,
            requested_max_tokens=requested,
            model_max_output=model_max,
            images=images,
        )
        if isinstance(decision, Allowed):
            # The store's conditional write: applied only if it still fits (it always must).
            assert self.spent + self.reserved + decision.reserve <= self.cap
            self.reserved += decision.reserve
            self.holds.append(Hold(decision.reserve, prices, bound, decision.max_tokens or 0, images))
        else:
            # Refused for want of room, or because a lowered cap left the window over it (then even a free
            # request is refused, with nothing needed and nothing remaining).
            assert decision.needed > decision.remaining or self.spent + self.reserved > self.cap

    def take(self, data: st.DataObject) -> Hold:
        index = data.draw(st.integers(min_value=0, max_value=len(self.holds) - 1), label="hold")
        hold = self.holds.pop(index)
        self.reserved -= hold.reserve
        return hold

    def settle(self, hold: Hold, cost: int) -> None:
        # The settlement rule production's stores run inside their settle transaction.
        charge = charge_for(cost, held=hold.reserve, cap=self.cap, spent=self.spent)
        assert charge.charged + charge.absorbed == max(0, cost)
        self.spent += charge.charged
        self.absorbed += charge.absorbed

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def settle_a_request_within_its_limits(self, data: st.DataObject) -> None:
        hold = self.take(data)
        usage = data.draw(usages_within(hold.prompt_bound, hold.max_tokens, hold.images), label="usage")
        cap_unchanged = self.spent + hold.reserve <= self.cap
        absorbed_before = self.absorbed
        self.settle(hold, cost_of(usage, hold.prices))
        if cap_unchanged:
            assert self.absorbed == absorbed_before  # usage within the hold's limits is charged in full

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), actual=st.integers(min_value=-(10**6), max_value=10**12))
    def settle_any_reported_cost(self, data: st.DataObject, actual: int) -> None:
        self.settle(self.take(data), actual)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def expire_a_lost_request_at_its_full_hold(self, data: st.DataObject) -> None:
        hold = self.take(data)
        self.settle(hold, hold.reserve)

    @rule(raise_by=st.integers(min_value=0, max_value=10**9))
    def raise_the_cap(self, raise_by: int) -> None:
        self.cap += raise_by
        self.settled_over_cap = max(0, self.spent - self.cap)

    @rule(lower_by=st.integers(min_value=0, max_value=10**9))
    def lower_the_cap_while_requests_run(self, lower_by: int) -> None:
        # A member may lower their cap at any time; holds in flight were admitted under the old one.
        self.cap = max(0, self.cap - lower_by)
        self.lowered = True
        # A cap lowered below what is already settled cannot undo that spend; nothing more may be charged.
        self.settled_over_cap = max(0, self.spent - self.cap)

    @invariant()
    def settled_spend_never_exceeds_the_cap(self) -> None:
        assert self.spent <= self.cap + self.settled_over_cap

    @invariant()
    def spent_and_reserved_never_exceed_the_cap(self) -> None:
        # Holds admitted before the cap was lowered may sit above it; they can never be charged past it.
        if not self.lowered:
            assert self.spent + self.reserved <= self.cap
        assert self.reserved == sum(hold.reserve for hold in self.holds)


OneBudgetUnderLoad.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_no_interleaving_of_reserve_settle_and_expire_passes_the_cap = OneBudgetUnderLoad.TestCase
