"""What an endpoint may be: the one check the console, the API and the CLI share."""

from __future__ import annotations

import pytest

from wattfare.server.webhooks.endpoints import (
    MAX_DESCRIPTION_LENGTH,
    InvalidEndpointError,
    checked_description,
    checked_url,
)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://hooks.example/x",
        "/relative/path",
        "http://user:pass@hooks.example/x",
        "http://hooks.example:99999/x",
        "http://hooks.example/a b",
        "http://hooks.example/\x00",
        "http://hooks.example/\x7f",
        "http://hooks.example/\x85",  # a C1 control
        "http://hooks.example/\u2028",  # a line separator
        "http://hooks.example/" + "a" * 2100,
    ],
)
def test_a_url_that_cannot_receive_deliveries_is_refused_by_name(url: str) -> None:
    with pytest.raises(InvalidEndpointError) as refused:
        checked_url(url, "test")
    assert refused.value.param == "url"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example/x",  # live mode is https only
        "https://localhost/x",
        "https://api.localhost/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://192.168.0.10/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://[fd00::1]/x",
    ],
)
def test_live_endpoints_are_public_https(url: str) -> None:
    with pytest.raises(InvalidEndpointError):
        checked_url(url, "live")
    if url.startswith("https://"):
        assert checked_url(url, "test") == url  # a test-mode endpoint may be on the developer's laptop


def test_a_good_url_is_kept_as_typed_without_its_surrounding_spaces() -> None:
    assert checked_url("  https://hooks.example/wattfare?x=1  ", "live") == "https://hooks.example/wattfare?x=1"


def test_a_description_is_one_printable_line() -> None:
    assert checked_description(None) == ""
    assert checked_description("  billing\n\tevents\u2028here ") == "billing events here"
    with pytest.raises(InvalidEndpointError) as refused:
        checked_description("nul\x00here")
    assert refused.value.param == "description"
    with pytest.raises(InvalidEndpointError):
        checked_description("bell\x07")
    with pytest.raises(InvalidEndpointError):
        checked_description("x" * (MAX_DESCRIPTION_LENGTH + 1))
    assert checked_description("x" * MAX_DESCRIPTION_LENGTH) == "x" * MAX_DESCRIPTION_LENGTH
