"""The leak detector the adapters' credential tests rely on, checked against a real leak."""

from __future__ import annotations

import pytest

from tests.adapters.upstream import Upstream, is_secret_name, leaks, secret_fields
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

pytestmark = pytest.mark.xdist_group("standin")


@pytest.mark.parametrize(
    "name", ["api_key", "openai_api_key", "apiKey", "x-api-key", "secret", "password", "Authorization", "access_token"]
)
def test_credential_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "prompt_tokens", "model", "user", "stop"])
def test_token_counts_and_ordinary_fields_are_not(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_fields_are_found_at_any_depth() -> None:
    body = {"model": "m", "extra": {"provider": [{"apiKey": "k"}]}, "max_tokens": 5}
    assert secret_fields(body) == ["extra.provider[0].apiKey"]


def test_leaks_names_secret_fields_and_key_text_in_body_and_headers() -> None:
    stats = {
        "last_request": {"model": "m", "messages": [], "extra": {"token": "t"}},
        "last_raw": '{"note": "sk_test_abc"}',
        "last_headers": {"x-forwarded-key": "Bearer sk_test_abc", "authorization": "Bearer provider-key"},
    }
    assert leaks(stats, ["sk_test_abc"]) == [
        "body field extra.token",
        "the key sk_test_abc… in the body",
        "the key sk_test_abc… in header x-forwarded-key",
    ]


def test_a_key_that_reaches_the_provider_is_detected(standin_server: ServerProcess, upstream: Upstream) -> None:
    # The live canary: whatever the stand-in received is what the checks read (here a key pasted into a message).
    key = standin_server.secret
    with (
        Wattfare(key, standin_server.base_url) as wf,
        pytest.raises(AssertionError, match=r"the key .* in the body"),
        upstream.receives_one_clean_request([key]) as marker,
    ):
        wf.user("u_leak_canary").chat(model="standin/ok", messages=[{"role": "user", "content": marker + key}])


def test_a_request_that_never_arrives_is_detected(upstream: Upstream) -> None:
    with (
        pytest.raises(AssertionError, match="0 requests reached the provider"),
        upstream.receives_one_clean_request([]),
    ):
        pass
