from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import ModelPricing, PriceOverride, PriceSet, UnpricedModelError, parse_pricing

# 2026-11-02 is a Monday.
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
SATURDAY = MONDAY + timedelta(days=5)


def at_clock(day: datetime, hhmm: str) -> datetime:
    return day.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]))


# ---------------------------------------------------------------- the base prices


def test_string_prices_parse_to_exact_decimals() -> None:
    pricing = parse_pricing({"prompt": "0.0000025", "completion": "0.00001", "request": "0.005", "image": "0.001445"})
    assert pricing.default == PriceSet(
        prompt=Decimal("0.0000025"), completion=Decimal("0.00001"), request=Decimal("0.005"), image=Decimal("0.001445")
    )
    assert pricing.overrides == ()


def test_missing_fees_are_zero_and_missing_optional_prices_are_unset() -> None:
    prices = parse_pricing({"prompt": "0.000001", "completion": "0.000002"}).default
    assert (prices.request, prices.image) == (0, 0)
    assert prices.input_cache_read is None
    assert prices.input_cache_write is None
    assert prices.internal_reasoning is None


def test_optional_prices_are_read() -> None:
    prices = parse_pricing(
        {
            "prompt": "0.000003",
            "completion": "0.000015",
            "input_cache_read": "0.0000003",
            "input_cache_write": "0.00000375",
            "input_cache_write_1h": "0.000006",
            "internal_reasoning": "0.00002",
            "audio": "0.00004",
        }
    ).default
    assert prices.input_cache_read == Decimal("0.0000003")
    assert prices.input_cache_write == Decimal("0.00000375")
    assert prices.input_cache_write_1h == Decimal("0.000006")
    assert prices.internal_reasoning == Decimal("0.00002")
    assert prices.audio == Decimal("0.00004")


def test_integer_prices_are_tolerated_and_unknown_keys_ignored() -> None:
    pricing = parse_pricing({"prompt": 0, "completion": 1, "web_search": "0.01", "discount": 0, "future": {"x": 1}})
    assert pricing.default == PriceSet(prompt=Decimal(0), completion=Decimal(1))


def test_a_zero_price_is_free_not_unpriced() -> None:
    assert parse_pricing({"prompt": "0", "completion": "0.000000000"}).default.completion == 0


@pytest.mark.parametrize(
    "pricing",
    [
        {"prompt": "-1", "completion": "-1"},
        {"prompt": "0.000001", "completion": "-1"},
        {"prompt": "0.000001", "completion": "0.000002", "input_cache_read": "-1"},
        {"prompt": "0.000001"},
        {"completion": "0.000001"},
        {"prompt": None, "completion": "0.000001"},
        {"prompt": 0.000001, "completion": "0.000002"},
        {"prompt": True, "completion": "0.000002"},
        {"prompt": "variable", "completion": "0.000002"},
        {"prompt": "NaN", "completion": "0.000002"},
        {"prompt": "1e999", "completion": "0.000002"},
        {"prompt": "0.000001", "completion": "0.000002", "overrides": "none"},
        {"prompt": "0.000001", "completion": "0.000002", "overrides": ["not an object"]},
        {"prompt": "0.000001", "completion": "0.000002", "overrides": [{"prompt": 0.5}]},
        {"prompt": "0.000001", "completion": "0.000002", "overrides": [{"prompt": "-1"}]},
    ],
)
def test_variable_missing_or_unreadable_prices_make_the_model_unpriced(pricing: dict[str, object]) -> None:
    with pytest.raises(UnpricedModelError):
        parse_pricing(pricing)


def test_a_pricing_that_is_not_an_object_is_unpriced() -> None:
    with pytest.raises(UnpricedModelError):
        parse_pricing(None)  # pyright: ignore[reportArgumentType]


def test_an_unpriced_model_error_is_a_value_error() -> None:
    assert issubclass(UnpricedModelError, ValueError)


def test_price_sets_refuse_negative_or_non_decimal_prices() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        PriceSet(prompt=Decimal(-1), completion=Decimal(0))
    with pytest.raises(TypeError):
        PriceSet(prompt=0.1, completion=Decimal(0))  # pyright: ignore[reportArgumentType]


# ---------------------------------------------------------------- overrides


BASE = {"prompt": "0.000003", "completion": "0.000015"}


def with_overrides(*overrides: dict[str, object]) -> ModelPricing:
    return parse_pricing({**BASE, "overrides": list(overrides)})


@pytest.mark.parametrize(
    "unknown",
    [
        {"max_prompt_tokens": 1000},
        {"min_completion_tokens": "5"},
        {"utc_month": 3},
        {"region": ["eu"]},
        {"batch": True},
    ],
)
def test_override_entries_with_unknown_conditions_are_skipped(unknown: dict[str, object]) -> None:
    pricing = with_overrides({"prompt": "0.1", **unknown}, {"completion": "0.00002"})
    assert len(pricing.overrides) == 1
    assert pricing.at(MONDAY, 10).prompt == Decimal("0.000003")
    assert pricing.at(MONDAY, 10).completion == Decimal("0.00002")


def test_unknown_price_keys_inside_an_override_are_ignored() -> None:
    pricing = with_overrides({"prompt": "0.000001", "input_audio_cache": "0.0000001"})
    assert pricing.overrides[0].prices == {"prompt": Decimal("0.000001")}
    assert pricing.at(MONDAY, 10).prompt == Decimal("0.000001")


def test_later_overrides_win_per_key() -> None:
    pricing = with_overrides(
        {"prompt": "0.000001", "completion": "0.000002"},
        {"prompt": "0.000004"},
    )
    prices = pricing.at(MONDAY, 10)
    assert prices.prompt == Decimal("0.000004")
    assert prices.completion == Decimal("0.000002")


def test_min_prompt_tokens_applies_only_to_strictly_larger_prompts() -> None:
    pricing = with_overrides({"min_prompt_tokens": 200_000, "prompt": "0.000006"})
    assert pricing.at(MONDAY, 200_000).prompt == Decimal("0.000003")
    assert pricing.at(MONDAY, 200_001).prompt == Decimal("0.000006")


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        (100, 400, ["0100", "0359"], ["0059", "0400", "2359"]),
        ("2200", "0200", ["2200", "2359", "0000", "0159"], ["2159", "0200", "1200"]),
        ("22:00", "02:00", ["2300", "0100"], ["0200", "2159"]),
        (1630, 30, ["1630", "0029"], ["0030", "1629"]),
        ("0000", "2400", ["0000", "2359"], []),
        (900, 900, ["0000", "0900", "2359"], []),
        (None, "0600", ["0000", "0559"], ["0600"]),
        ("1800", None, ["1800", "2359"], ["1759", "0000"]),
    ],
)
def test_utc_windows_are_half_open_and_may_wrap_past_midnight(
    start: object, end: object, inside: list[str], outside: list[str]
) -> None:
    entry: dict[str, object] = {"prompt": "0.000001"}
    if start is not None:
        entry["utc_start"] = start
    if end is not None:
        entry["utc_end"] = end
    pricing = with_overrides(entry)
    for clock in inside:
        assert pricing.at(at_clock(MONDAY, clock), 10).prompt == Decimal("0.000001"), clock
    for clock in outside:
        assert pricing.at(at_clock(MONDAY, clock), 10).prompt == Decimal("0.000003"), clock


@pytest.mark.parametrize("days", [["saturday", "sunday"], ["Sat", "SUN"], [5, 6], ["satur", 6]])
def test_utc_days_accept_numbers_names_and_abbreviations(days: list[object]) -> None:
    pricing = with_overrides({"utc_days": days, "prompt": "0.000001"})
    assert pricing.overrides[0].utc_days == (5, 6)
    assert pricing.at(SATURDAY, 10).prompt == Decimal("0.000001")
    assert pricing.at(SATURDAY + timedelta(days=1), 10).prompt == Decimal("0.000001")
    assert pricing.at(MONDAY, 10).prompt == Decimal("0.000003")


def test_days_and_window_must_both_hold() -> None:
    pricing = with_overrides({"utc_days": ["monday"], "utc_start": 100, "utc_end": 400, "prompt": "0.000001"})
    assert pricing.at(at_clock(MONDAY, "0200"), 10).prompt == Decimal("0.000001")
    assert pricing.at(at_clock(MONDAY, "0500"), 10).prompt == Decimal("0.000003")
    assert pricing.at(at_clock(MONDAY + timedelta(days=1), "0200"), 10).prompt == Decimal("0.000003")


def test_conditions_are_judged_in_utc_whatever_the_given_timezone() -> None:
    pricing = with_overrides({"utc_start": 2300, "utc_end": 2400, "prompt": "0.000001"})
    paris = timezone(timedelta(hours=1))
    assert pricing.at(datetime(2026, 11, 3, 0, 30, tzinfo=paris), 10).prompt == Decimal("0.000001")
    assert pricing.at(datetime(2026, 11, 3, 23, 30, tzinfo=paris), 10).prompt == Decimal("0.000003")


def test_a_naive_instant_is_refused() -> None:
    pricing = with_overrides()
    with pytest.raises(ValueError, match="naive"):
        pricing.at(datetime(2026, 11, 2, 12, 0), 10)
    with pytest.raises(ValueError, match="naive"):
        pricing.worst_case(datetime(2026, 11, 2, 12, 0), 10)


@pytest.mark.parametrize(
    "entry",
    [
        {"utc_start": "25:00", "prompt": "0.1"},
        {"utc_start": 1260, "prompt": "0.1"},
        {"utc_end": 2401, "prompt": "0.1"},
        {"utc_start": "noon", "prompt": "0.1"},
        {"utc_start": -100, "prompt": "0.1"},
        {"utc_days": ["funday"], "prompt": "0.1"},
        {"utc_days": [7], "prompt": "0.1"},
        {"utc_days": "monday", "prompt": "0.1"},
        {"utc_days": ["mo"], "prompt": "0.1"},
        {"min_prompt_tokens": -1, "prompt": "0.1"},
        {"min_prompt_tokens": "200000", "prompt": "0.1"},
        {"min_prompt_tokens": 1.5, "prompt": "0.1"},
    ],
)
def test_a_malformed_known_condition_makes_the_model_unpriced(entry: dict[str, object]) -> None:
    with pytest.raises(UnpricedModelError):
        with_overrides(entry)


# ---------------------------------------------------------------- the worst case


def test_worst_case_takes_each_key_at_its_highest_applicable_price() -> None:
    pricing = with_overrides(
        {"min_prompt_tokens": 200_000, "prompt": "0.000006", "completion": "0.0000225"},
        {"utc_start": 0, "utc_end": 600, "prompt": "0.000001", "completion": "0.00003"},
    )
    night = at_clock(MONDAY, "0300")
    worst = pricing.worst_case(night, 300_000)
    assert worst.prompt == Decimal("0.000006")
    assert worst.completion == Decimal("0.00003")
    # By day the night entry does not hold.
    assert pricing.worst_case(at_clock(MONDAY, "1200"), 300_000).completion == Decimal("0.0000225")


def test_worst_case_ignores_tiers_the_bound_cannot_reach() -> None:
    pricing = with_overrides({"min_prompt_tokens": 200_000, "prompt": "0.000006"})
    assert pricing.worst_case(MONDAY, 200_000).prompt == Decimal("0.000003")
    assert pricing.worst_case(MONDAY, 200_001).prompt == Decimal("0.000006")


def test_worst_case_of_a_price_only_an_override_sets_competes_with_its_fallback() -> None:
    pricing = with_overrides({"min_prompt_tokens": 1000, "input_cache_read": "0.0000003"})
    worst = pricing.worst_case(MONDAY, 5000)
    # Below 1000 tokens cached tokens bill at the prompt price, which is the higher of the two.
    assert worst.input_cache_read == Decimal("0.000003")
    assert pricing.worst_case(MONDAY, 500).input_cache_read is None


def effective(prices: PriceSet) -> tuple[Decimal, ...]:
    """Every rate a token or fee can be billed at, with unset optional prices at their fallback."""

    def rate(value: Decimal | None, fallback: Decimal) -> Decimal:
        return fallback if value is None else value

    return (
        prices.prompt,
        prices.completion,
        prices.request,
        prices.image,
        rate(prices.input_cache_read, prices.prompt),
        rate(prices.input_cache_write, prices.prompt),
        rate(prices.input_cache_write_1h, prices.prompt),
        rate(prices.audio, prices.prompt),
        rate(prices.internal_reasoning, prices.completion),
    )


price_strings = st.integers(min_value=0, max_value=10**6).map(lambda n: f"{Decimal(n).scaleb(-12):f}")
clocks = st.integers(min_value=0, max_value=23).flatmap(
    lambda hour: st.integers(min_value=0, max_value=59).map(lambda minute: hour * 100 + minute)
)
override_entries = st.fixed_dictionaries(
    {},
    optional={
        "prompt": price_strings,
        "completion": price_strings,
        "request": price_strings,
        "input_cache_read": price_strings,
        "input_cache_write": price_strings,
        "internal_reasoning": price_strings,
        "min_prompt_tokens": st.integers(min_value=0, max_value=2000),
        "utc_start": clocks,
        "utc_end": clocks,
        "utc_days": st.lists(st.integers(min_value=0, max_value=6), max_size=3),
    },
)
pricings = st.builds(
    lambda base, overrides: parse_pricing({**base, "overrides": overrides}),
    st.fixed_dictionaries(
        {"prompt": price_strings, "completion": price_strings},
        optional={"input_cache_read": price_strings, "internal_reasoning": price_strings, "image": price_strings},
    ),
    st.lists(override_entries, max_size=5),
)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2040, 1, 1),
    timezones=st.just(UTC),
)


@given(pricings, instants, st.integers(min_value=0, max_value=2500))
def test_worst_case_bounds_the_prices_of_every_prompt_up_to_the_bound(
    pricing: ModelPricing, when: datetime, bound: int
) -> None:
    worst = effective(pricing.worst_case(when, bound))
    # Prices change only at the thresholds, so checking on both sides of each covers every size.
    sizes = {0, bound}
    for override in pricing.overrides:
        if override.min_prompt_tokens is not None and override.min_prompt_tokens < bound:
            sizes |= {override.min_prompt_tokens, override.min_prompt_tokens + 1}
    for size in sizes:
        actual = effective(pricing.at(when, size))
        assert all(w >= a for w, a in zip(worst, actual, strict=True)), (size, worst, actual)


def test_override_constructed_directly_is_validated() -> None:
    with pytest.raises(ValueError, match="clock"):
        PriceOverride(prices={}, utc_start="2500")
    with pytest.raises(ValueError, match="unknown price key"):
        PriceOverride(prices={"web_search": Decimal(1)})
    with pytest.raises(ValueError, match="utc_days"):
        PriceOverride(prices={}, utc_days=(7,))
