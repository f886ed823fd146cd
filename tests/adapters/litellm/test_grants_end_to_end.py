"""`wattfare/` calls on a one-time grant against a real `wattfare serve` process: two requests, then the refusal."""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

from typing import Any

import litellm
import pytest

from tests.adapters.litellm.conftest import MODEL
from tests.adapters.litellm.request_log import RequestLog
from wattfare import Wattfare
from wattfare_litellm import WattfareGrantInvalidError, WattfareLLM

pytestmark = pytest.mark.xdist_group("litellm")

HI = [{"role": "user", "content": "Say hi"}]


def test_a_grant_of_two_requests_serves_two_completions_then_raises_grant_invalid(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, request_log: RequestLog
) -> None:
    token = wattfare.create_test_grant(2).grant_token
    call: dict[str, Any] = {"model": f"wattfare/{MODEL}", "messages": HI, "wattfare_grant": token, **credentials}

    reply: Any = litellm.completion(**call)
    streamed: Any = litellm.completion(**call, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
    with pytest.raises(WattfareGrantInvalidError) as refused:
        litellm.completion(**call)

    assert reply.choices[0].message.content.startswith("Sandbox reply to: Say hi")
    assert text.startswith("Sandbox reply to: Say hi")
    assert (refused.value.code, refused.value.wattfare_status_code, refused.value.app_user_id) == (
        "grant_invalid",
        402,
        None,
    )
    assert len(request_log.completions()) == 3, "the refusal was retried"
    assert wattfare.grant(token).status().requests_left == 0
