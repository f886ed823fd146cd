"""The server's answer for each error code and the SDK's reading of it agree: the same status, the right class."""

from __future__ import annotations

from typing import get_args

import pytest

from wattfare import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BudgetBusyError,
    BudgetExceededError,
    FundingInvalidError,
    GrantInvalidError,
    NotConnectedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
)
from wattfare._error_codes import STATUS_BY_CODE, ErrorCode
from wattfare._exceptions import error_from_response, error_from_stream_event
from wattfare.server.errors import ApiError

# What an app's code catches for each code: written out here, not read from either side's table.
EXPECTED: dict[str, tuple[int, type[APIStatusError]]] = {
    "auth": (401, AuthenticationError),
    "not_connected": (402, NotConnectedError),
    "budget_exceeded": (402, BudgetExceededError),
    "budget_busy": (429, BudgetBusyError),
    "funding_invalid": (402, FundingInvalidError),
    "grant_invalid": (402, GrantInvalidError),
    "invalid_request": (400, BadRequestError),
    "model_not_found": (404, NotFoundError),
    "rate_limited": (429, RateLimitError),
    "upstream": (502, UpstreamError),
    "unavailable": (503, APIStatusError),
    "internal": (500, APIStatusError),
}


def test_every_code_has_one_status_and_an_expectation() -> None:
    assert set(get_args(ErrorCode)) == set(STATUS_BY_CODE) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_the_server_answer_reads_back_as_the_same_status_and_class(code: ErrorCode) -> None:
    status, cls = EXPECTED[code]
    answer = ApiError(code, "refused").response("req_1")

    assert answer.status_code == status
    error = error_from_response(answer.status_code, dict(answer.headers), bytes(answer.body))
    assert type(error) is cls
    assert (error.status_code, error.code) == (status, code)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_an_error_event_inside_a_stream_reads_as_the_status_its_code_is_answered_with(code: ErrorCode) -> None:
    status, cls = EXPECTED[code]
    error = error_from_stream_event(ApiError(code, "cut").envelope())

    assert type(error) is cls
    assert error.status_code == status
