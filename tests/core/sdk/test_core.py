"""The I/O-free core: configuration, request building, retry policy."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from wattfare import Message, UsageError
from wattfare._client import _core, _retries, _usage_report

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def config(secret_key: str | None = "sk_test_x", base_url: str | None = None, **environ: str) -> _core.ClientConfig:
    return _core.resolve_config(secret_key, base_url, timeout=60.0, max_retries=2, environ=environ)


@pytest.mark.parametrize("key", [None, "", "   ", "pk_test_abc", "sk-openai-style", "Bearer sk_test_x", "sk_te\nst"])
def test_a_missing_or_malformed_secret_key_is_a_usage_error(key: str | None) -> None:
    with pytest.raises(UsageError) as info:
        config(key)
    assert not isinstance(info.value, httpx.HTTPError)


def test_the_usage_error_for_a_publishable_key_says_so_without_echoing_it() -> None:
    with pytest.raises(UsageError, match="publishable") as info:
        config("pk_live_supersecretvalue")
    assert "supersecretvalue" not in str(info.value)


def test_the_key_and_base_url_fall_back_to_the_environment() -> None:
    resolved = config(None, None, WATTFARE_SECRET_KEY="sk_live_env", WATTFARE_BASE_URL="https://wf.example.com/")

    assert resolved.secret_key == "sk_live_env"
    assert resolved.api_url == "https://wf.example.com/api/v1"


def test_explicit_arguments_win_over_the_environment() -> None:
    resolved = config("sk_test_arg", "http://arg:1", WATTFARE_SECRET_KEY="sk_live_env", WATTFARE_BASE_URL="http://env")

    assert (resolved.secret_key, resolved.api_url) == ("sk_test_arg", "http://arg:1/api/v1")


def test_the_default_base_url_is_the_local_dev_server() -> None:
    assert config().api_url == "http://127.0.0.1:8787/api/v1"


def test_a_base_url_that_already_ends_in_the_api_prefix_is_not_doubled() -> None:
    assert config(base_url="http://h:8787/api/v1/").api_url == "http://h:8787/api/v1"


@pytest.mark.parametrize("url", ["127.0.0.1:8787", "ftp://h", "http://"])
def test_a_base_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError):
        config(base_url=url)


def test_the_key_never_shows_in_the_configs_repr() -> None:
    assert "sk_test_x" not in repr(config())


@pytest.mark.parametrize("amount", [Decimal("10.25"), 10, "0.000000001"])
def test_session_bodies_carry_the_exact_monthly_cap_as_a_json_number(amount: Decimal | int | str) -> None:
    spec = _core.session_request("user_1", amount)

    assert spec.body is not None
    sent = json.loads(spec.body, parse_float=Decimal)
    assert sent == {"appUserId": "user_1", "requestLimit": {"monthlyUsd": Decimal(str(amount))}}


def test_a_session_without_a_cap_sends_no_request_limit() -> None:
    assert _core.session_request("ü/1", None).body == '{"appUserId":"ü/1"}'.encode()


@pytest.mark.parametrize("amount", [0.1, True, "ten", Decimal("-1"), Decimal("NaN"), "Infinity"])
def test_a_monthly_cap_that_is_a_float_or_not_a_finite_amount_is_a_usage_error(amount: object) -> None:
    with pytest.raises(UsageError):
        _core.session_request("user_1", amount)


def test_chat_params_pass_through_verbatim() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    spec = _core.chat_request(
        "alice",
        "openai/gpt-4o-mini",
        [{"role": "user", "content": "hi"}],
        {
            "tools": tools,
            "tool_choice": "auto",
            "temperature": 0.2,
            "seed": 7,
            "n": 2,
            "stop": ["\n"],
            "response_format": {"type": "json_object"},
            "max_tokens": 50,
            "future_param": {"x": [1]},
        },
        stream=False,
    )

    assert spec.body is not None
    assert json.loads(spec.body) == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.2,
        "seed": 7,
        "n": 2,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
        "max_tokens": 50,
        "future_param": {"x": [1]},
    }
    assert (spec.app_user_id, spec.stream, spec.path) == ("alice", False, "/chat/completions")


def test_a_message_from_a_previous_completion_can_be_sent_back_as_is() -> None:
    reply = Message.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        }
    )
    spec = _core.chat_request("alice", "m", [reply], {}, stream=False)

    assert spec.body is not None
    assert json.loads(spec.body)["messages"] == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        }
    ]


def test_streams_always_ask_for_usage_and_keep_other_stream_options() -> None:
    spec = _core.chat_request("alice", "m", [], {"stream_options": {"other": 1}}, stream=True)

    assert spec.body is not None
    sent = json.loads(spec.body)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"other": 1, "include_usage": True}


@pytest.mark.parametrize(("params", "stream"), [({"stream": True}, False), ({"stream": False}, True)])
def test_contradicting_the_method_with_a_stream_param_is_a_usage_error(params: dict[str, bool], stream: bool) -> None:
    with pytest.raises(UsageError):
        _core.chat_request("alice", "m", [], params, stream=stream)


def test_a_non_json_param_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        _core.chat_request("alice", "m", [], {"temperature": float("nan")}, stream=False)


def test_usage_dates_go_out_as_iso_dates_in_utc() -> None:
    late_evening_in_new_york = datetime(2026, 11, 30, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    spec = _usage_report.usage_request("alice", date(2026, 11, 1), late_evening_in_new_york, limit=None, after=None)

    assert spec.params == {"appUserId": "alice", "from": "2026-11-01", "to": "2026-12-01"}


def test_a_usage_page_is_asked_for_with_limit_and_after() -> None:
    spec = _usage_report.usage_request(None, None, None, limit=1000, after="grant:g 1")

    assert spec.params == {"limit": "1000", "after": "grant:g 1"}


@pytest.mark.parametrize("limit", [0, 1001, True, 2.0, "10"])
def test_a_usage_page_of_no_sensible_size_is_a_usage_error(limit: object) -> None:
    with pytest.raises(UsageError, match="limit"):
        _usage_report.usage_request(None, None, None, limit=limit, after=None)  # pyright: ignore[reportArgumentType]


def test_app_user_ids_are_percent_encoded_in_paths() -> None:
    assert _core.disconnect_request("a/b c").path == "/connections/a%2Fb%20c"


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert _retries.RetryPolicy(2).after_status(0, response(status), now=NOW, jitter=0.0) == 0.5


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_other_client_errors_are_not_retried(status: int) -> None:
    assert _retries.RetryPolicy(2).after_status(0, response(status), now=NOW, jitter=0.0) is None


def test_x_should_retry_forces_or_forbids_but_never_retries_a_402() -> None:
    policy = _retries.RetryPolicy(2)
    forced = {"x-should-retry": "true"}
    assert policy.after_status(0, response(400, **forced), now=NOW, jitter=0.0) == 0.5
    assert policy.after_status(0, response(503, **{"x-should-retry": "false"}), now=NOW, jitter=0.0) is None
    assert policy.after_status(0, response(402, **forced), now=NOW, jitter=0.0) is None


def test_backoff_doubles_from_half_a_second_and_is_capped_at_eight() -> None:
    policy = _retries.RetryPolicy(10)

    assert [policy.backoff(n, 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.backoff(2, 0.999) == pytest.approx(1.5, abs=0.01)


def test_retry_after_replaces_the_backoff_and_a_very_long_one_is_raised_instead() -> None:
    policy = _retries.RetryPolicy(2)

    assert policy.after_status(0, response(429, **{"retry-after": "3"}), now=NOW, jitter=0.0) == 3.0
    date_header = {"retry-after": "Thu, 26 Nov 2026 12:00:05 GMT"}
    assert policy.after_status(0, response(503, **date_header), now=NOW, jitter=0.0) == 5.0
    assert policy.after_status(0, response(429, **{"retry-after": "3600"}), now=NOW, jitter=0.0) is None


def test_retries_stop_after_max_retries() -> None:
    policy = _retries.RetryPolicy(2)

    assert policy.after_status(2, response(503), now=NOW, jitter=0.0) is None
    assert policy.after_transport_error(1, jitter=0.0) == 1.0
    assert policy.after_transport_error(2, jitter=0.0) is None


def busy(**headers: str) -> httpx.Response:
    body = {"error": {"code": "budget_busy", "message": "busy", "type": "rate_limit_error", "param": None}}
    return httpx.Response(429, json=body, headers=headers)


def test_a_busy_budget_is_retried_after_its_retry_after_within_max_retries() -> None:
    policy = _retries.RetryPolicy(2)

    assert policy.after_status(0, busy(**{"retry-after": "1"}), now=NOW, jitter=0.0) == 1.0
    assert policy.after_status(1, busy(), now=NOW, jitter=0.0) == 1.0  # no Retry-After: the backoff
    assert policy.after_status(2, busy(**{"retry-after": "1"}), now=NOW, jitter=0.0) is None
    assert policy.after_status(0, busy(**{"retry-after": "3600"}), now=NOW, jitter=0.0) is None


def test_busy_retries_set_apart_bound_a_busy_budget_and_leave_other_errors_to_max_retries() -> None:
    policy = _retries.RetryPolicy(0, busy_retries=2)

    assert policy.after_status(1, busy(**{"retry-after": "1"}), now=NOW, jitter=0.0) == 1.0
    assert policy.after_status(2, busy(**{"retry-after": "1"}), now=NOW, jitter=0.0) is None
    rate_limited = {"error": {"code": "rate_limited", "message": "slow down"}}
    assert policy.after_status(0, httpx.Response(429, json=rate_limited), now=NOW, jitter=0.0) is None
    assert policy.after_status(0, response(503), now=NOW, jitter=0.0) is None
    assert policy.after_transport_error(0, jitter=0.0) is None


def test_busy_retries_default_to_none_and_are_checked_like_max_retries() -> None:
    assert config().busy_retries is None
    made = _core.resolve_config("sk_test_x", None, timeout=60.0, max_retries=0, busy_retries=3, environ={})
    assert (made.max_retries, made.busy_retries) == (0, 3)
    for wrong in (-1, True, 1.5):
        with pytest.raises(UsageError, match="busy_retries"):
            _core.resolve_config("sk_test_x", None, timeout=60.0, max_retries=0, busy_retries=wrong, environ={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"wattfare-max-tokens": "2048", "wattfare-clamped": "true"}, (2048, True)),
        ({"wattfare-max-tokens": " 4096 ", "wattfare-clamped": "FALSE"}, (4096, False)),
        ({"wattfare-clamped": "false"}, (None, False)),
        ({"wattfare-max-tokens": "-1", "wattfare-clamped": "yes"}, (None, None)),
        ({"wattfare-max-tokens": "12.5"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_clamping_headers_are_read_and_a_malformed_one_is_none(
    headers: dict[str, str], expected: tuple[int | None, bool | None]
) -> None:
    assert _core.clamping_headers(httpx.Headers(headers)) == expected
