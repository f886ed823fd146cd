"""`examples/langchain_agent.py`, run against a real Wattfare server: a funded answer, and both budget paths."""

from __future__ import annotations

import importlib.util
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

import wattfare
from tests.support.wattfare_server import ServerProcess

pytestmark = pytest.mark.xdist_group("langchain-server")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain_agent.py"


@pytest.fixture
def example(wattfare_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", wattfare_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", wattfare_server.base_url)
    spec = importlib.util.spec_from_file_location("langchain_agent_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wf(wattfare_server: ServerProcess) -> Iterator[wattfare.Wattfare]:
    with wattfare.Wattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        yield client


def run(example: ModuleType, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = example.main(list(argv), out=out)
    return code, out.getvalue()


def test_the_agent_calls_a_tool_streams_its_answer_and_charges_the_user(
    example: ModuleType, wf: wattfare.Wattfare
) -> None:
    code, output = run(example, "ex-alice", "What is the weather in Paris?")
    assert code == 0, output
    assert "[calling get_weather(" in output
    assert "Sandbox read the tool result: It is sunny and 21 degrees C" in output
    charged = re.search(r"This answer cost you \$([0-9.]+); \$([0-9.]+) left", output)
    assert charged is not None, output
    status = wf.user("ex-alice").status()
    assert Decimal(charged[1]) == status.spent_usd > 0
    assert Decimal(charged[2]) == status.remaining_usd


def test_a_user_without_a_connection_gets_the_connect_link(example: ModuleType, wf: wattfare.Wattfare) -> None:
    assert run(example, "ex-bob")[0] == 0  # test mode connects a new user at their first request
    wf.user("ex-bob").disconnect()
    code, output = run(example, "ex-bob")
    assert code == 2, output
    assert re.search(r"Connect your AI budget to continue: http://127\.0\.0\.1:\d+/connect\?session=", output)


def test_a_user_with_a_spent_cap_is_told_when_it_resets(example: ModuleType, wf: wattfare.Wattfare) -> None:
    wf.create_session("ex-carol", monthly_usd="0.000001")
    code, output = run(example, "ex-carol")
    assert code == 3, output
    assert re.search(r"it resets \d{4}-\d{2}-01 00:00 UTC", output)
