from __future__ import annotations

from decimal import Decimal

import pytest

from wattfare.metering import Charge, MeteredUsage, PriceSet, charge_for, cost_of, trusted_usage

# 1 000 nanos per prompt token, 2 000 per completion token.
PRICES = PriceSet(prompt=Decimal("0.000001"), completion=Decimal("0.000002"))


def test_the_upstream_reported_cost_wins_over_token_prices() -> None:
    usage = MeteredUsage(prompt_tokens=1000, completion_tokens=1000, upstream_cost=1234)
    assert cost_of(usage, PRICES) == 1234


def test_a_reported_cost_of_zero_is_a_cost_not_a_missing_one() -> None:
    usage = MeteredUsage(prompt_tokens=1000, completion_tokens=1000, upstream_cost=0)
    assert cost_of(usage, PRICES) == 0


def test_tokens_are_priced_when_the_upstream_reports_no_cost() -> None:
    assert cost_of(MeteredUsage(prompt_tokens=10, completion_tokens=5), PRICES) == 20_000


@pytest.mark.parametrize(("tokens", "nanos"), [(1, 2), (3, 5), (2, 3), (0, 0)])
def test_costs_round_half_up_to_the_nano(tokens: int, nanos: int) -> None:
    prices = PriceSet(prompt=Decimal("0.0000000015"), completion=Decimal(0))  # 1.5 nanos a token
    assert cost_of(MeteredUsage(prompt_tokens=tokens, completion_tokens=0), prices) == nanos


def test_cached_and_cache_write_tokens_use_their_own_prices() -> None:
    prices = PriceSet(
        prompt=Decimal("0.000001"),
        completion=Decimal("0.000002"),
        input_cache_read=Decimal("0.0000001"),
        input_cache_write=Decimal("0.00000125"),
    )
    usage = MeteredUsage(prompt_tokens=100, completion_tokens=0, cached_prompt_tokens=60, cache_write_tokens=30)
    # 10 x 1 000 + 60 x 100 + 30 x 1 250.
    assert cost_of(usage, prices) == 53_500


def test_cache_tokens_without_their_own_price_bill_at_the_prompt_price() -> None:
    usage = MeteredUsage(prompt_tokens=100, completion_tokens=0, cached_prompt_tokens=60, cache_write_tokens=30)
    assert cost_of(usage, PRICES) == 100_000


def test_reasoning_tokens_are_part_of_completion_tokens_not_added_twice() -> None:
    usage = MeteredUsage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=40)
    assert cost_of(usage, PRICES) == 200_000


def test_reasoning_tokens_bill_at_their_own_price_when_it_is_set() -> None:
    prices = PriceSet(prompt=Decimal(0), completion=Decimal("0.000002"), internal_reasoning=Decimal("0.000003"))
    usage = MeteredUsage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=40)
    assert cost_of(usage, prices) == 60 * 2_000 + 40 * 3_000


def test_request_and_image_fees_are_added() -> None:
    prices = PriceSet(
        prompt=Decimal("0.000001"), completion=Decimal("0.000002"), request=Decimal("0.0001"), image=Decimal("0.00005")
    )
    usage = MeteredUsage(prompt_tokens=10, completion_tokens=5, images=2)
    assert cost_of(usage, prices) == 20_000 + 100_000 + 100_000


def test_inconsistent_counts_never_bill_more_tokens_than_were_used() -> None:
    usage = MeteredUsage(prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=50, reasoning_tokens=50)
    assert cost_of(usage, PRICES) == 20_000
    dear_writes = PriceSet(prompt=Decimal("0.000001"), completion=Decimal(0), input_cache_write=Decimal("0.00001"))
    overlapping = MeteredUsage(prompt_tokens=10, completion_tokens=0, cached_prompt_tokens=5, cache_write_tokens=50)
    assert cost_of(overlapping, dear_writes) == 5 * 1_000 + 5 * 10_000
    assert cost_of(MeteredUsage(prompt_tokens=-5, completion_tokens=-1, images=-2), PRICES) == 0


@pytest.mark.parametrize(
    ("actual", "reserved", "charge"),
    [
        (300, 500, Charge(charged=300, absorbed=0)),
        (500, 500, Charge(charged=500, absorbed=0)),
        (700, 500, Charge(charged=500, absorbed=200)),
        (0, 500, Charge(charged=0, absorbed=0)),
        (-40, 500, Charge(charged=0, absorbed=0)),
        (10, 0, Charge(charged=0, absorbed=10)),
    ],
)
def test_a_charge_never_exceeds_its_hold_and_the_excess_is_absorbed(actual: int, reserved: int, charge: Charge) -> None:
    assert charge_for(actual, held=reserved, cap=10_000, spent=0) == charge


@pytest.mark.parametrize(
    ("cost", "cap", "spent", "charge"),
    [
        (300, 1_000, 800, Charge(charged=200, absorbed=100)),  # the cap was lowered while the request ran
        (300, 1_000, 1_000, Charge(charged=0, absorbed=300)),
        (300, 500, 900, Charge(charged=0, absorbed=300)),  # already over a lowered cap: nothing more is charged
        (300, 1_000, 700, Charge(charged=300, absorbed=0)),
    ],
)
def test_a_charge_never_passes_the_cap_in_force_when_it_settles(
    cost: int, cap: int, spent: int, charge: Charge
) -> None:
    assert charge_for(cost, held=500, cap=cap, spent=spent) == charge


def test_a_negative_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        charge_for(10, held=-1, cap=100, spent=0)


@pytest.mark.parametrize(
    ("usage", "relayed_bytes", "trusted"),
    [
        (MeteredUsage(prompt_tokens=10, completion_tokens=4), 12, True),
        (MeteredUsage(prompt_tokens=10, completion_tokens=0), 0, True),  # an empty answer
        (MeteredUsage(prompt_tokens=10, completion_tokens=0), 12, False),  # text came, yet no tokens claimed
        (MeteredUsage(prompt_tokens=0, completion_tokens=4, suspect=True), 12, False),  # e.g. a negative count
    ],
)
def test_usage_that_would_be_a_discount_is_not_trusted(usage: MeteredUsage, relayed_bytes: int, trusted: bool) -> None:
    assert trusted_usage(usage, relayed_bytes=relayed_bytes) is trusted
