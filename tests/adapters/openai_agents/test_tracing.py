"""The provider leaves the Agents SDK's tracing as the app set it; `RunConfig(tracing_disabled=True)` turns it off.

Tracing is turned back on here with an in-memory processor only (the conftest removed the exporter to OpenAI),
then turned off again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, TracingProcessor, set_trace_processors, set_tracing_disabled

from tests.adapters.openai_agents.conftest import MODEL
from wattfare_agents import WattfareModelProvider

pytestmark = [pytest.mark.xdist_group("openai_agents"), pytest.mark.anyio]


class Recorder(TracingProcessor):
    """Keeps the names of the traces that ended, here in memory."""

    def __init__(self) -> None:
        self.traces: list[str] = []

    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        self.traces.append(trace.name)

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    set_trace_processors([recording])
    set_tracing_disabled(False)
    try:
        yield recording
    finally:
        set_tracing_disabled(True)
        set_trace_processors([])


async def test_runs_are_traced_as_the_app_chose_and_never_when_the_run_config_says_not_to(
    recorder: Recorder, provider: WattfareModelProvider, user_id: str
) -> None:
    agent = Agent(name="Assistant", model=MODEL)

    await Runner.run(
        agent, "Hi", run_config=RunConfig(model_provider=provider.for_user(user_id), tracing_disabled=True)
    )
    untraced = list(recorder.traces)
    await Runner.run(agent, "Hi", run_config=RunConfig(model_provider=provider.for_user(user_id), workflow_name="wf"))

    assert untraced == []
    assert recorder.traces == ["wf"]  # the provider did not turn tracing off behind the app's back
