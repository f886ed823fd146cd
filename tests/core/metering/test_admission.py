from __future__ import annotations

from decimal import Decimal

import pytest

from wattfare.metering import Allowed, Budget, PriceSet, Refused, decide_admission

# 1 000 nanos per prompt token, 2 000 per completion token.
PRICES = PriceSet(prompt=Decimal("0.000001"), completion=Decimal("0.000002"))
BOUND = 100  # prompt part: 100 000 nanos
MILLI_USD = 1_000_000
FRESH = Budget(cap=MILLI_USD, spent=0, reserved=0)


def decide(
    budget: Budget = FRESH,
    prices: PriceSet = PRICES,
    *,
    requested: int | None = None,
    model_max: int | None = None,
    bound: int = BOUND,
    min_tokens: int = 1,
    images: int = 0,
    allowance: int | None = None,
) -> Allowed | Refused:
    return decide_admission(
        budget,
        prices,
        prompt_token_bound=bound,
        requested_max_tokens=requested,
        model_max_output=model_max,
        output_allowance=allowance,
        min_completion_tokens=min_tokens,
        images=images,
    )


def test_a_request_that_fits_reserves_its_worst_case_and_keeps_its_max_tokens() -> None:
    assert decide(requested=100, model_max=4096) == Allowed(reserve=300_000, max_tokens=100, clamped=False)


def test_without_max_tokens_the_budget_sets_the_largest_affordable_value() -> None:
    # (1 000 000 - 100 000) / 2 000 = 450 completion tokens.
    assert decide(requested=None, model_max=4096) == Allowed(reserve=MILLI_USD, max_tokens=450, clamped=True)


def test_without_max_tokens_the_model_maximum_applies_when_affordable() -> None:
    assert decide(requested=None, model_max=200) == Allowed(reserve=500_000, max_tokens=200, clamped=False)


def test_more_max_tokens_than_the_budget_affords_are_clamped() -> None:
    assert decide(requested=1000, model_max=4096) == Allowed(reserve=MILLI_USD, max_tokens=450, clamped=True)


def test_max_tokens_above_the_model_maximum_are_lowered_to_it_which_is_no_clamp() -> None:
    # `clamped` says the cap cut the answer; the model's own maximum is no news to the client.
    assert decide(requested=100, model_max=50) == Allowed(reserve=200_000, max_tokens=50, clamped=False)


def test_this_months_spend_shrinks_what_is_affordable() -> None:
    budget = Budget(cap=MILLI_USD, spent=500_000, reserved=0)
    # (500 000 - 100 000) / 2 000 = 200.
    assert decide(budget, requested=None, model_max=4096) == Allowed(reserve=500_000, max_tokens=200, clamped=True)


def test_holds_in_flight_make_a_request_busy_never_cut_to_their_crumbs() -> None:
    budget = Budget(cap=MILLI_USD, spent=300_000, reserved=200_000)
    # The spend leaves 700 000: a 300-token answer (700 000 with the prompt); the holds leave 500 000.
    assert decide(budget, requested=None, model_max=4096) == Refused("budget_busy", needed=700_000, remaining=500_000)
    assert decide(budget, requested=200) == Allowed(reserve=500_000, max_tokens=200, clamped=False)
    settled = Budget(cap=MILLI_USD, spent=300_000, reserved=0)
    assert decide(settled, requested=None, model_max=4096) == Allowed(reserve=700_000, max_tokens=300, clamped=True)


def test_without_max_tokens_the_output_allowance_is_sent_and_held() -> None:
    assert decide(allowance=100, model_max=4096) == Allowed(reserve=300_000, max_tokens=100, clamped=False)
    assert decide(allowance=100, model_max=50) == Allowed(reserve=200_000, max_tokens=50, clamped=False)
    # A client that asks for more gets what it asks for.
    assert decide(allowance=100, requested=300) == Allowed(reserve=700_000, max_tokens=300, clamped=False)


def test_an_allowance_the_spend_cannot_afford_is_clamped_and_says_so() -> None:
    budget = Budget(cap=MILLI_USD, spent=800_000, reserved=0)
    assert decide(budget, allowance=100) == Allowed(reserve=200_000, max_tokens=50, clamped=True)


def test_a_spent_cap_is_exceeded_even_with_holds_in_flight() -> None:
    budget = Budget(cap=MILLI_USD, spent=950_000, reserved=40_000)
    assert decide(budget, allowance=100) == Refused("budget_exceeded", needed=102_000, remaining=10_000)


def test_affordable_tokens_round_down() -> None:
    budget = Budget(cap=101_999, spent=0, reserved=0)
    assert decide(budget) == Refused("budget_exceeded", needed=102_000, remaining=101_999)
    exact = Budget(cap=102_000, spent=0, reserved=0)
    assert decide(exact) == Allowed(reserve=102_000, max_tokens=1, clamped=True)


def test_a_budget_that_cannot_pay_for_the_prompt_is_denied() -> None:
    budget = Budget(cap=MILLI_USD, spent=950_000, reserved=0)
    assert decide(budget, requested=10) == Refused("budget_exceeded", needed=102_000, remaining=50_000)


def test_the_minimal_answer_size_is_honoured() -> None:
    budget = Budget(cap=120_000, spent=0, reserved=0)  # affords 10 tokens
    assert decide(budget, min_tokens=16) == Refused("budget_exceeded", needed=132_000, remaining=120_000)
    assert decide(budget, min_tokens=10) == Allowed(reserve=120_000, max_tokens=10, clamped=True)


def test_a_client_asking_for_fewer_tokens_than_the_minimum_is_judged_on_its_own_request() -> None:
    budget = Budget(cap=110_000, spent=0, reserved=0)  # affords 5 tokens
    assert decide(budget, requested=4, min_tokens=16) == Allowed(reserve=108_000, max_tokens=4, clamped=False)


def test_an_exhausted_budget_is_denied() -> None:
    budget = Budget(cap=MILLI_USD, spent=MILLI_USD, reserved=0)
    assert decide(budget, requested=1) == Refused("budget_exceeded", needed=102_000, remaining=0)


def test_free_completions_without_max_tokens_leave_max_tokens_unset() -> None:
    prices = PriceSet(prompt=Decimal("0.000001"), completion=Decimal(0))
    assert decide(prices=prices, model_max=4096) == Allowed(reserve=100_000, max_tokens=None, clamped=False)


def test_free_completions_keep_the_clients_max_tokens_within_the_model_maximum() -> None:
    prices = PriceSet(prompt=Decimal("0.000001"), completion=Decimal(0))
    assert decide(prices=prices, requested=500) == Allowed(reserve=100_000, max_tokens=500, clamped=False)
    assert decide(prices=prices, requested=500, model_max=100) == Allowed(
        reserve=100_000, max_tokens=100, clamped=False
    )


def test_a_free_model_runs_on_an_exhausted_budget_but_not_on_one_over_its_cap() -> None:
    free = PriceSet(prompt=Decimal(0), completion=Decimal(0))
    spent = Budget(cap=MILLI_USD, spent=MILLI_USD, reserved=0)
    assert decide(spent, free) == Allowed(reserve=0, max_tokens=None, clamped=False)
    lowered_cap = Budget(cap=MILLI_USD, spent=MILLI_USD + 1, reserved=0)
    assert decide(lowered_cap, free) == Refused("budget_exceeded", needed=0, remaining=0)


def test_free_completions_still_need_the_prompt_to_fit() -> None:
    prices = PriceSet(prompt=Decimal("0.000001"), completion=Decimal(0))
    budget = Budget(cap=99_999, spent=0, reserved=0)
    assert decide(budget, prices) == Refused("budget_exceeded", needed=100_000, remaining=99_999)


def test_request_and_image_fees_are_reserved() -> None:
    prices = PriceSet(
        prompt=Decimal("0.000001"), completion=Decimal("0.000002"), request=Decimal("0.0001"), image=Decimal("0.00005")
    )
    # 100 000 prompt + 100 000 request + 2 x 50 000 images + 10 x 2 000.
    assert decide(prices=prices, requested=10, images=2) == Allowed(reserve=320_000, max_tokens=10, clamped=False)


def test_prompt_tokens_are_reserved_at_the_dearest_prompt_side_rate() -> None:
    prices = PriceSet(
        prompt=Decimal("0.000001"),
        completion=Decimal("0.000002"),
        input_cache_read=Decimal("0.0000001"),
        input_cache_write=Decimal("0.00000125"),
        input_cache_write_1h=Decimal("0.000002"),
    )
    assert decide(prices=prices, requested=10) == Allowed(reserve=220_000, max_tokens=10, clamped=False)


def test_completion_tokens_are_reserved_at_the_dearer_of_completion_and_reasoning() -> None:
    prices = PriceSet(
        prompt=Decimal("0.000001"), completion=Decimal("0.000002"), internal_reasoning=Decimal("0.000003")
    )
    assert decide(prices=prices, requested=None) == Allowed(reserve=MILLI_USD, max_tokens=300, clamped=True)


def test_sub_nano_worst_cases_round_up() -> None:
    prices = PriceSet(prompt=Decimal("0.0000000000015"), completion=Decimal("0.0000000000025"))
    # 1 x 0.0015 + 1 x 0.0025 nanos.
    assert decide(prices=prices, bound=1, requested=1) == Allowed(reserve=1, max_tokens=1, clamped=False)


@pytest.mark.parametrize(
    "arguments",
    [{"bound": -1}, {"requested": -1}, {"model_max": -1}, {"min_tokens": -1}, {"images": -1}],
)
def test_negative_counts_are_refused(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        decide(**arguments)  # pyright: ignore[reportArgumentType]


def test_a_budget_has_no_negative_amounts_and_never_a_negative_remainder() -> None:
    with pytest.raises(ValueError, match="negative"):
        Budget(cap=-1, spent=0, reserved=0)
    assert Budget(cap=10, spent=8, reserved=5).remaining == 0
    assert Budget(cap=10, spent=3, reserved=5).remaining == 2
