"""A truncated or mistyped secret key is refused by the SDK as such, before any request, never echoed back."""

from __future__ import annotations

import httpx
import pytest

from wattfare import AsyncWattfare, UsageError, Wattfare
from wattfare._client import _core

WHOLE = "sk_test_app_5YylV6RjAsi44vA3_SIHuBpG3EpGuvf9ZqDgonS-f88LC2d912FnF9omKvSE"


def config(secret_key: str) -> _core.ClientConfig:
    return _core.resolve_config(secret_key, None, timeout=60.0, max_retries=0, environ={})


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("sk_test_app_5YylV6R…", "'…'"),  # what a terminal table leaves of a key
        ("sk_test_app_…mKvSE", "'…'"),  # the hint the console and `wattfare keys list` show
        ("sk_test_app_5YylV6R...", "'...'"),
        ("sk_test_app_5Yyl V6R", "a space"),
        ("sk_test_app_5Yyl\tV6R", "a tab"),
        ("sk_test_app_5Yyl\nV6R", "a line break"),
        ("sk_test_app_5Yyl\u00a0V6R", "a space (no-break space)"),
        ("sk_test_app_5Yyl\u200bV6R", "an invisible character (U+200B)"),
        ("sk_test_app_5Yylé", "'é'"),
    ],
)
def test_a_key_with_characters_no_key_has_is_called_truncated_or_mistyped(key: str, named: str) -> None:
    with pytest.raises(UsageError) as info:
        config(key)

    message = str(info.value)
    assert message.startswith(f"This API key looks truncated or mistyped (it contains {named})")
    assert "header" not in message
    assert key.split("_")[3][:4] not in message  # the key itself is never repeated


@pytest.mark.parametrize("client", [Wattfare, AsyncWattfare])
def test_both_clients_refuse_a_truncated_key_when_they_are_made(client: type[Wattfare | AsyncWattfare]) -> None:
    with pytest.raises(UsageError, match="looks truncated or mistyped"):
        client(secret_key=WHOLE[:30] + "…")


def test_a_truncated_key_in_the_environment_is_refused_the_same_way() -> None:
    with pytest.raises(UsageError, match=r"looks truncated or mistyped \(it contains '…'\)"):
        _core.resolve_config(
            None, None, timeout=60.0, max_retries=0, environ={"WATTFARE_SECRET_KEY": WHOLE[:30] + "…\n"}
        )


def test_a_whole_key_with_the_newline_of_an_env_file_is_accepted_as_it_was_minted() -> None:
    assert config(f"  {WHOLE}\n").secret_key == WHOLE


def test_a_whole_key_goes_out_in_the_authorization_header_unchanged() -> None:
    resolved = config(WHOLE)
    with httpx.Client() as http:
        request = _core.build_request(http, resolved, _core.models_request())

    assert request.headers["Authorization"] == f"Bearer {WHOLE}"
