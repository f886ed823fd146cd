"""examples/litellm_router.py: its Router, and the script as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from examples.litellm_router import build_router

import wattfare_litellm
from tests.adapters.litellm.conftest import MODEL
from tests.adapters.litellm.proxy_environment import REPO
from tests.adapters.litellm.request_log import RequestLog
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_litellm import WattfareBudgetExceededError, WattfareLLM

pytestmark = pytest.mark.xdist_group("litellm")

HI = [{"role": "user", "content": "Say hi"}]


def test_the_example_router_serves_both_groups_charged_to_the_user(
    provider: WattfareLLM, wattfare_server: ServerProcess, wattfare: Wattfare, user_id: str
) -> None:
    router = build_router(wattfare_server.secret, wattfare_server.base_url)
    wattfare_litellm.register(provider)  # build_router installed the default handler; count through ours

    smart: Any = router.completion(model="smart", messages=HI, user=user_id)
    fast: Any = router.completion(model="fast", messages=HI, user=user_id)

    assert smart.choices[0].message.content.startswith("Sandbox reply to")
    assert fast.choices[0].message.content.startswith("Sandbox reply to")
    assert sorted(row.model for row in wattfare.usage(user_id).data) == [MODEL, "openai/gpt-4o-mini"]


def test_the_example_routers_fallback_neither_retries_nor_falls_back_from_a_spent_cap(
    provider: WattfareLLM,
    wattfare_server: ServerProcess,
    wattfare: Wattfare,
    user_id: str,
    request_log: RequestLog,
) -> None:
    router = build_router(wattfare_server.secret, wattfare_server.base_url, retry_after=0)
    wattfare_litellm.register(provider)
    wattfare.create_session(user_id, monthly_usd="0.000001")

    with pytest.raises(WattfareBudgetExceededError):
        router.completion(model="smart", messages=HI, user=user_id)

    # A per-user refusal is final: no retry, and no fallback to the "fast" group.
    assert Counter(r.model for r in request_log.completions(user_id)) == {MODEL: 1}


def test_the_example_script_runs_against_a_wattfare_server(wattfare_server: ServerProcess) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WATTFARE_")},
        "WATTFARE_SECRET_KEY": wattfare_server.secret,
        "WATTFARE_BASE_URL": wattfare_server.base_url,
    }

    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "litellm_router.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Sandbox reply to: Name a colour.")
    assert lines[1].startswith("charged to user_42: $")
    assert lines[2].startswith("user_broke: cap reached until ")
    assert lines[3].startswith("still serving user_42: Sandbox reply to")
