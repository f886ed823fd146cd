"""DSPy on Wattfare: `dspy.LM("wattfare/<model>")` through the `wattfare/` LiteLLM provider, charged to one user.

DSPy calls models through LiteLLM, so the provider registered by `wattfare_litellm.register()` serves it with no
DSPy-specific code: plain calls, structured output (`JSONAdapter`), native tool calls, and a refusal raised once
(DSPy's `LM` asks LiteLLM for 3 retries by default; a refused user is never retried).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dspy
import litellm
import pytest

import wattfare_litellm
from tests.adapters.litellm.request_log import RequestLog
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_litellm import WattfareBudgetExceededError, WattfareLLM

pytestmark = pytest.mark.xdist_group("litellm")

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(scope="module", autouse=True)
def no_dspy_cache() -> None:
    # DSPy caches answers on disk under the home directory by default; a cached answer is never charged.
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


@pytest.fixture
def models(provider: WattfareLLM, wattfare: Wattfare, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wattfare's models in LiteLLM's model map, which then says they take tools and a JSON schema.

    DSPy asks LiteLLM before it sends either: without this, its adapters fall back to prompting for them.
    """
    monkeypatch.setattr(litellm, "model_cost", dict(litellm.model_cost))  # restored after the test
    wattfare_litellm.register_models(wattfare)


def lm(credentials: dict[str, str], user_id: str) -> dspy.LM:
    return dspy.LM(
        f"wattfare/{MODEL}", api_key=credentials["api_key"], api_base=credentials["api_base"], user=user_id, cache=False
    )


def charged(wattfare: Wattfare, user_id: str) -> int:
    return sum(row.requests for row in wattfare.usage(user_id).data)


def test_a_dspy_lm_call_is_charged_to_the_user_it_names(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    answers = lm(credentials, user_id)("Say hi")

    assert answers[0].startswith("Sandbox reply to: Say hi")
    assert [r.app_user_id for r in request_log.completions()] == [user_id]
    assert charged(wattfare, user_id) == 1


class Describe(dspy.Signature):
    """Describe a city."""

    question: str = dspy.InputField()
    city: str = dspy.OutputField()
    population: int = dspy.OutputField()


def test_a_signature_is_answered_as_structured_output(
    models: None, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:

    with dspy.context(lm=lm(credentials, user_id), adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(Describe)(question="Describe 'Paris', population 2100000.")

    assert (prediction.city, prediction.population) == ("Paris", 2100000)
    assert charged(wattfare, user_id) == 1


class Plan(dspy.Signature):
    """Pick the tools that answer the question."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    calls: dspy.ToolCalls = dspy.OutputField()


def test_tools_are_called_natively(models: None, credentials: dict[str, str], wattfare: Wattfare, user_id: str) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    with dspy.context(lm=lm(credentials, user_id), adapter=dspy.JSONAdapter(use_native_function_calling=True)):
        plan = dspy.Predict(Plan)(question="What is the weather in Paris?", tools=[dspy.Tool(get_weather)])

    (call,) = plan.calls.tool_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert call.execute(functions=[dspy.Tool(get_weather)]) == "Sunny in Paris"
    assert charged(wattfare, user_id) == 1


def test_a_spent_cap_is_raised_once_with_wattfares_code_despite_dspys_retries(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")
    refused_lm = lm(credentials, user_id)
    assert refused_lm.num_retries > 0  # DSPy's default asks LiteLLM to retry

    with pytest.raises(dspy.LMProviderError) as refused:
        refused_lm("Hi")

    assert refused.value.provider_code == "budget_exceeded"
    cause: BaseException | None = refused.value
    while cause is not None and not isinstance(cause, WattfareBudgetExceededError):
        cause = cause.__cause__
    assert isinstance(cause, WattfareBudgetExceededError)
    assert cause.resets_at is not None
    assert len(request_log.completions(user_id)) == 1, "the refusal was retried"
    assert charged(wattfare, user_id) == 0


def test_the_readme_quickstart_runs_and_charges_user_42(
    wattfare_server: ServerProcess, wattfare: Wattfare, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    code = readme[readme.index("**DSPy**") :].split("```python\n", 1)[1].split("```", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_", "OPENAI_"))}
    env |= {
        "WATTFARE_SECRET_KEY": wattfare_server.secret,
        "WATTFARE_BASE_URL": wattfare_server.base_url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price-map download
        "DSPY_CACHEDIR": str(tmp_path),
    }
    before = charged(wattfare, "user_42")

    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip()
    assert charged(wattfare, "user_42") == before + 1
