from __future__ import annotations

import json
import pickle
import re
from datetime import UTC, datetime

import pytest

import wattfare
import wattfare._exceptions
from wattfare import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetBusyError,
    BudgetExceededError,
    FundingInvalidError,
    GrantInvalidError,
    NotConnectedError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    StreamError,
    UpstreamError,
    UsageError,
    WattfareError,
)
from wattfare._exceptions import error_from_response, error_from_stream_event, parse_retry_after

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def body(code: str, message: str = "nope", **extra: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "type": "x", "param": None, **extra}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "auth", AuthenticationError),
        (402, "not_connected", NotConnectedError),
        (402, "budget_exceeded", BudgetExceededError),
        (402, "funding_invalid", FundingInvalidError),
        (402, "grant_invalid", GrantInvalidError),
        (400, "invalid_request", BadRequestError),
        (413, "invalid_request", BadRequestError),
        (422, "invalid_request", BadRequestError),
        (404, "model_not_found", NotFoundError),
        (429, "rate_limited", RateLimitError),
        (429, "budget_busy", BudgetBusyError),
        (502, "upstream", UpstreamError),
        (504, "upstream", UpstreamError),
    ],
)
def test_every_error_code_maps_to_its_exception_with_its_fields(status: int, code: str, cls: type) -> None:
    raw = json.dumps({"error": {"code": code, "message": "Spelled out.", "type": "t", "param": "messages"}})
    exc = error_from_response(status, {"Wattfare-Request-Id": "req_7"}, raw.encode())

    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.message, exc.param, exc.request_id) == (
        status,
        code,
        "Spelled out.",
        "messages",
        "req_7",
    )
    assert exc.body == json.loads(raw)


def test_the_four_402s_share_a_base_that_is_not_a_rate_limit() -> None:
    for cls in (NotConnectedError, BudgetExceededError, FundingInvalidError, GrantInvalidError):
        assert issubclass(cls, PaymentRequiredError)
        assert not issubclass(cls, RateLimitError)


def test_a_busy_budget_is_a_rate_limit_that_backoff_code_retries_and_never_a_spent_cap() -> None:
    assert issubclass(BudgetBusyError, RateLimitError)
    assert not issubclass(BudgetBusyError, PaymentRequiredError)
    assert not issubclass(BudgetBusyError, BudgetExceededError)


def test_a_busy_budget_carries_retry_after_and_the_request_id() -> None:
    exc = error_from_response(
        429,
        {"Retry-After": "1", "Wattfare-Request-Id": "req_busy"},
        body("budget_busy", "Your other requests hold your budget; retry shortly.", type="rate_limit_error"),
    )

    assert type(exc) is BudgetBusyError
    assert (exc.retry_after, exc.request_id) == (1.0, "req_busy")
    assert str(exc) == (
        "429 budget_busy: Your other requests hold your budget; retry shortly. (retry after 1s; request id req_busy)"
    )


def test_a_busy_budget_event_inside_a_stream_maps_to_a_429() -> None:
    exc = error_from_stream_event({"error": {"code": "budget_busy", "message": "busy"}}, request_id="req_s")

    assert type(exc) is BudgetBusyError
    assert (exc.status_code, exc.request_id) == (429, "req_s")


def test_budget_exceeded_carries_when_the_window_resets() -> None:
    exc = error_from_response(402, {}, body("budget_exceeded", resetsAt="2026-12-01T00:00:00Z"))

    assert isinstance(exc, BudgetExceededError)
    assert exc.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


def test_rate_limit_carries_retry_after_in_seconds() -> None:
    exc = error_from_response(429, {"Retry-After": "7"}, body("rate_limited"))

    assert isinstance(exc, RateLimitError)
    assert exc.retry_after == 7.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Thu, 26 Nov 2026 12:00:30 GMT", now=NOW) == 30.0
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now=NOW) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (404, NotFoundError),
        (429, RateLimitError),
        (502, UpstreamError),
        (500, APIStatusError),
        (503, APIStatusError),
        (418, APIStatusError),
    ],
)
def test_an_unknown_code_falls_back_to_the_class_its_status_implies(status: int, cls: type) -> None:
    exc = error_from_response(status, {}, body("a_code_from_the_future"))

    assert type(exc) is cls
    assert exc.code == "a_code_from_the_future"


def test_a_non_json_body_keeps_its_raw_text() -> None:
    exc = error_from_response(503, {}, b"<html>Service Unavailable</html>")

    assert type(exc) is APIStatusError
    assert exc.body == "<html>Service Unavailable</html>"
    assert exc.code is None
    assert "503" in str(exc)
    assert "Service Unavailable" in exc.message


def test_a_stream_error_event_uses_the_same_mapping_with_the_codes_status() -> None:
    exc = error_from_stream_event(
        {"error": {"code": "budget_exceeded", "message": "Cap reached.", "resetsAt": "2026-12-01T00:00:00Z"}},
        request_id="req_s",
    )

    assert isinstance(exc, BudgetExceededError)
    assert (exc.status_code, exc.request_id) == (402, "req_s")
    assert exc.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_stream_error_event_with_an_http_status_as_code_maps_by_that_status() -> None:
    exc = error_from_stream_event({"error": {"code": 502, "message": "provider died"}})

    assert type(exc) is UpstreamError
    assert (exc.status_code, exc.code) == (502, None)


def test_str_names_status_code_message_and_request_id() -> None:
    exc = error_from_response(
        402, {"wattfare-request-id": "req_42"}, body("budget_exceeded", "Cap reached.", resetsAt="2026-12-01T00:00Z")
    )

    assert str(exc) == "402 budget_exceeded: Cap reached. (resets at 2026-12-01T00:00:00Z; request id req_42)"
    assert str(RateLimitError("Slow down.", status_code=429, code="rate_limited", retry_after=2)) == (
        "429 rate_limited: Slow down. (retry after 2s)"
    )
    assert str(APIConnectionError("could not reach Wattfare")) == "could not reach Wattfare"


ALL_ERRORS = [
    UsageError("bad key"),
    APIError("boom", request_id="r1"),
    APIConnectionError("down", request_id="r2"),
    APITimeoutError("slow"),
    StreamError("cut", request_id="r3"),
    APIStatusError("teapot", status_code=418, code="teapot", param="p", body={"a": 1}, request_id="r4"),
    AuthenticationError("who", status_code=401, code="auth"),
    PaymentRequiredError("pay", status_code=402),
    NotConnectedError("connect", status_code=402, code="not_connected"),
    BudgetExceededError("cap", status_code=402, code="budget_exceeded", resets_at=datetime(2026, 12, 1, tzinfo=UTC)),
    FundingInvalidError("funding", status_code=402, code="funding_invalid"),
    GrantInvalidError("grant", status_code=402, code="grant_invalid", request_id="r6"),
    BadRequestError("bad", status_code=422, code="invalid_request", param="messages"),
    NotFoundError("missing", status_code=404, code="model_not_found"),
    RateLimitError("slow down", status_code=429, code="rate_limited", retry_after=3.5),
    BudgetBusyError("busy", status_code=429, code="budget_busy", retry_after=1, request_id="r5"),
    UpstreamError("provider", status_code=502, code="upstream", body="<html>"),
]


@pytest.mark.parametrize("exc", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_every_exception_survives_a_pickle_round_trip(exc: WattfareError) -> None:
    copy = pickle.loads(pickle.dumps(exc))

    assert type(copy) is type(exc)
    assert copy.__dict__ == exc.__dict__
    assert copy.args == exc.args
    assert str(copy) == str(exc)


def test_the_docstring_tree_names_every_exception_class() -> None:
    tree = wattfare._exceptions.__doc__ or ""
    classes = {type(e).__name__ for e in ALL_ERRORS} | {"WattfareError"}
    missing = {name for name in classes if not re.search(rf"^\s*[+*] {name}\b", tree, re.MULTILINE)}
    assert not missing
