from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import (
    NANOS_PER_USD,
    nanos_to_json_number,
    nanos_to_usd,
    parse_usd,
    usd_to_nanos,
)


def test_a_nano_usd_is_a_billionth_of_a_dollar() -> None:
    assert NANOS_PER_USD == 10**9


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        ("0.0000025", 2_500),
        ("2.5e-6", 2_500),
        ("10", 10_000_000_000),
        ("0", 0),
        ("-0", 0),
        (".5", 500_000_000),
        ("5.", 5_000_000_000),
        ("+1.000000001", 1_000_000_001),
        ("-1", -1_000_000_000),
        (" 0.1 ", 100_000_000),
        (3, 3_000_000_000),
        (-2, -2_000_000_000),
        (Decimal("0.000000075"), 75),
        (Decimal("1E+3"), 1_000_000_000_000),
    ],
)
def test_usd_amounts_convert_exactly_to_nanos(value: str | int | Decimal, nanos: int) -> None:
    assert usd_to_nanos(value) == nanos


@pytest.mark.parametrize(
    ("value", "up", "half_up", "down"),
    [
        ("0.0000000005", 1, 1, 0),
        ("0.0000000004999", 1, 0, 0),
        ("0.0000000015", 2, 2, 1),
        ("-0.0000000005", 0, -1, -1),
        ("-0.0000000004", 0, 0, -1),
        ("1e-40", 1, 0, 0),
        ("1e-999999", 1, 0, 0),
        ("-1e-999999", 0, 0, -1),
    ],
)
def test_sub_nano_amounts_round_toward_the_named_direction(value: str, up: int, half_up: int, down: int) -> None:
    assert usd_to_nanos(value, rounding="up") == up
    assert usd_to_nanos(value, rounding="half_up") == half_up
    assert usd_to_nanos(value, rounding="down") == down


def test_half_up_is_the_default_rounding() -> None:
    assert usd_to_nanos("0.0000000025") == 3


@pytest.mark.parametrize("value", [0.1, 1.0, float("nan"), True, None, [1], b"1"])
def test_money_is_never_a_float_or_another_type(value: object) -> None:
    with pytest.raises(TypeError):
        usd_to_nanos(value)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "abc",
        "1.2.3",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        "sNaN",
        "1_000",
        "0x10",
        "1 000",
        "1e",
        "e5",
        "$1",
        "1e31",
    ],
)
def test_strings_that_are_not_finite_decimals_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="USD"):
        usd_to_nanos(value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")])
def test_non_finite_decimals_are_rejected(value: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        usd_to_nanos(value)


def test_an_unknown_rounding_is_rejected() -> None:
    with pytest.raises(ValueError, match="rounding"):
        usd_to_nanos("1", rounding="sideways")  # pyright: ignore[reportArgumentType]


def test_parse_usd_keeps_every_digit() -> None:
    assert parse_usd("0.00000000000000000000000001") == Decimal("1e-26")


@pytest.mark.parametrize(("nanos", "text"), [(1, "0.000000001"), (2_500, "0.000002500"), (-5, "-0.000000005")])
def test_nanos_become_usd_with_nine_decimal_places(nanos: int, text: str) -> None:
    usd = nanos_to_usd(nanos)
    assert usd == Decimal(text)
    assert usd.as_tuple().exponent == -9
    assert f"{usd:f}" == text


def test_nanos_to_usd_is_exact_beyond_the_default_decimal_precision() -> None:
    nanos = 10**40 + 1
    assert f"{nanos_to_usd(nanos):f}" == "10000000000000000000000000000000.000000001"


@pytest.mark.parametrize("value", [1.5, True, "5", None])
def test_nanos_must_be_an_int(value: object) -> None:
    with pytest.raises(TypeError):
        nanos_to_usd(value)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError):
        nanos_to_json_number(value)  # pyright: ignore[reportArgumentType]


@given(st.integers(min_value=-(10**38), max_value=10**38), st.sampled_from(["up", "half_up", "down"]))
def test_nanos_survive_a_round_trip_through_usd(nanos: int, rounding: str) -> None:
    assert usd_to_nanos(nanos_to_usd(nanos), rounding=rounding) == nanos  # pyright: ignore[reportArgumentType]


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_json_numbers_carry_the_exact_decimal_amount(nanos: int) -> None:
    number = nanos_to_json_number(nanos)
    assert Decimal(repr(number)) == nanos_to_usd(nanos)
    assert Decimal(json.dumps(number)) == nanos_to_usd(nanos)


def test_whole_dollars_go_on_the_wire_as_integers() -> None:
    assert nanos_to_json_number(7 * NANOS_PER_USD) == 7
    assert isinstance(nanos_to_json_number(7 * NANOS_PER_USD), int)
    assert nanos_to_json_number(10**30) == 10**21
    assert isinstance(nanos_to_json_number(1), float)
