from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import Window, window_containing


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # pyright: ignore[reportArgumentType]


def test_a_window_is_the_utc_calendar_month() -> None:
    window = window_containing(utc(2026, 11, 17, 9, 30))
    assert window == Window(utc(2026, 11, 1), utc(2026, 12, 1))
    assert window.key == "2026-11"


def test_december_rolls_over_into_january_of_the_next_year() -> None:
    window = window_containing(datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
    assert window == Window(utc(2026, 12, 1), utc(2027, 1, 1))
    assert window.key == "2026-12"


def test_midnight_on_the_first_opens_the_new_window() -> None:
    window = window_containing(utc(2027, 1, 1))
    assert window.start == utc(2027, 1, 1)
    assert window.key == "2027-01"
    assert not window_containing(utc(2026, 12, 31, 23, 59, 59)).contains(utc(2027, 1, 1))


@pytest.mark.parametrize(("year", "days"), [(2028, 29), (2027, 28), (2100, 28), (2000, 29)])
def test_february_has_its_leap_year_length(year: int, days: int) -> None:
    window = window_containing(utc(year, 2, 15))
    assert window.end == utc(year, 3, 1)
    assert window.end - window.start == timedelta(days=days)
    assert window.contains(utc(year, 2, days, 23, 59))


@pytest.mark.parametrize(
    ("moment", "key"),
    [
        (datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "2026-11"),
        (datetime(2026, 11, 30, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-12"),
        (datetime(2027, 1, 1, 5, 29, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2026-12"),
    ],
)
def test_instants_in_other_timezones_are_placed_by_their_utc_time(moment: datetime, key: str) -> None:
    window = window_containing(moment)
    assert window.key == key
    assert window.start.tzinfo is UTC
    assert window.contains(moment)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        window_containing(datetime(2026, 11, 1))
    with pytest.raises(ValueError, match="naive"):
        window_containing(utc(2026, 11, 1)).contains(datetime(2026, 11, 1))


def test_a_window_is_half_open() -> None:
    window = window_containing(utc(2026, 11, 5))
    assert window.contains(window.start)
    assert not window.contains(window.end)
    assert window.contains(window.end - timedelta(microseconds=1))


def test_window_bounds_must_be_utc_and_ordered() -> None:
    with pytest.raises(ValueError, match="UTC"):
        Window(datetime(2026, 11, 1), utc(2026, 12, 1))
    with pytest.raises(ValueError, match="UTC"):
        Window(datetime(2026, 11, 1, tzinfo=timezone(timedelta(hours=1))), utc(2026, 12, 1))
    with pytest.raises(ValueError, match="before"):
        Window(utc(2026, 12, 1), utc(2026, 11, 1))


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9999, 11, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]),
    )
)
def test_every_instant_lies_in_exactly_one_month_window(moment: datetime) -> None:
    window = window_containing(moment)
    assert window.contains(moment)
    assert window.start.day == 1
    assert (window.start.hour, window.start.minute, window.start.second, window.start.microsecond) == (0, 0, 0, 0)
    assert window_containing(window.end).start == window.end
    assert window_containing(window.start - timedelta(microseconds=1)).end == window.start
    assert window.key == window.start.strftime("%Y-%m")
