"""Budget thresholds: which shares of a cap a settle announces, and the window a key names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import THRESHOLDS, thresholds_crossed, window_containing, window_of_key

CAP = 1_000_000


@pytest.mark.parametrize(
    ("spent", "alerted", "crossed"),
    [
        (0, 0, ()),
        (499_999, 0, ()),
        (500_000, 0, (50,)),
        (799_999, 50, ()),
        (800_000, 50, (80,)),
        (1_000_000, 0, (50, 80, 100)),  # one charge jumping over all three announces each
        (1_000_000, 80, (100,)),
        (2_000_000, 100, ()),  # everything announced already this window
    ],
)
def test_the_thresholds_reached_above_what_was_announced(spent: int, alerted: int, crossed: tuple[int, ...]) -> None:
    assert thresholds_crossed(spent, CAP, alerted) == crossed


def test_a_zero_cap_announces_nothing() -> None:
    assert thresholds_crossed(0, 0, 0) == ()
    assert thresholds_crossed(10, 0, 0) == ()


@given(
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=10**9),
)
def test_charges_settled_one_by_one_announce_each_threshold_once(charges: list[int], cap: int) -> None:
    spent, alerted, announced = 0, 0, []
    for charge in charges:
        spent += charge
        crossed = thresholds_crossed(spent, cap, alerted)
        announced += crossed
        alerted = max(crossed, default=alerted)
    assert announced == [t for t in THRESHOLDS if spent * 100 >= t * cap]


def test_a_window_key_names_its_month() -> None:
    window = window_of_key("2026-12")
    assert window == window_containing(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert window.end == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "key", ["", "2026", "2026-13", "2026-00", "26-01", "2026-1", "2026_01", "abcd-ef", "2026-01-01"]
)
def test_anything_else_is_no_window_key(key: str) -> None:
    with pytest.raises(ValueError, match="not a window key"):
        window_of_key(key)
