"""`examples/llamaindex_agent.py`, run for real against a `wattfare serve` process in test mode."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_agent.py"
pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("llamaindex-server")]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llamaindex_agent_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_answers_with_both_tools_and_charges_the_user(llamaindex_server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    env |= {"WATTFARE_SECRET_KEY": llamaindex_server.secret, "WATTFARE_BASE_URL": llamaindex_server.base_url}
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "example-user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[get_weather({'city': " in run.stdout
    assert "[to_fahrenheit({'celsius': 1.5}) -> 34.7]" in run.stdout  # the sandbox's argument for a number is 1.5
    assert "Sandbox read the tool result:" in run.stdout
    with Wattfare(llamaindex_server.secret, llamaindex_server.base_url) as wf:
        [row] = wf.usage("example-user").data
        assert row.requests == 2
        assert f"example-user has spent ${row.cost_usd} this month" in run.stdout


async def test_the_example_sends_a_disconnected_user_to_connect(
    llamaindex_server: ServerProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", llamaindex_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", llamaindex_server.base_url)
    with Wattfare() as wf:
        wf.user("example-gone").chat(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        wf.user("example-gone").disconnect()
        assert await load_example().main("example-gone") == 2
        assert wf.usage("example-gone").data[0].requests == 1  # the agent's refused call was not charged
    out = capsys.readouterr().out
    assert f"example-gone has not connected an AI budget: open {llamaindex_server.base_url}/connect?session=" in out
