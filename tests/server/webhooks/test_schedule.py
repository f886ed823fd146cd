"""The retry schedule: the Standard Webhooks delays after each failed attempt, then giving up after about a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wattfare.server.webhooks.schedule import RETRY_DELAYS, next_attempt

NOW = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
DOCUMENTED = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]


@pytest.mark.parametrize(("attempts_made", "delay"), list(enumerate(DOCUMENTED, start=1)))
def test_each_failed_attempt_is_retried_after_the_documented_delay(attempts_made: int, delay: timedelta) -> None:
    assert next_attempt(attempts_made, NOW) == NOW + delay


def test_after_the_seventh_retry_fails_the_delivery_is_given_up() -> None:
    assert next_attempt(len(DOCUMENTED), NOW) is not None
    assert next_attempt(len(DOCUMENTED) + 1, NOW) is None
    assert next_attempt(100, NOW) is None


def test_the_whole_schedule_spans_about_twenty_seven_and_a_half_hours() -> None:
    total = sum(RETRY_DELAYS, timedelta())
    assert list(RETRY_DELAYS) == DOCUMENTED
    assert round(total / timedelta(hours=1), 1) == 27.6
    # Walking the schedule as the loop does lands on the same instant.
    at, attempts = NOW, 0
    while (retry := next_attempt(attempts + 1, at)) is not None:
        at, attempts = retry, attempts + 1
    assert (attempts, at - NOW) == (7, total)


def test_a_schedule_of_its_own_is_followed_the_same_way() -> None:
    delays = (timedelta(seconds=1), timedelta(seconds=2))
    assert [next_attempt(n, NOW, delays) for n in (1, 2, 3)] == [NOW + delays[0], NOW + delays[1], None]


def test_the_schedule_is_asked_only_after_a_failed_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next_attempt(0, datetime(2026, 1, 1, tzinfo=UTC))
