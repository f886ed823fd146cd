"""WattfareModelProvider: OpenAI Agents SDK runs whose model calls are charged to your app's end users.

    >>> from agents import Agent, RunConfig, Runner
    >>> from wattfare_agents import WattfareModelProvider
    >>> provider = WattfareModelProvider()  # doctest: +SKIP  (reads WATTFARE_SECRET_KEY; once per process)
    >>> agent = Agent(name="Assistant", model="openai/gpt-4o-mini")
    >>> config = RunConfig(model_provider=provider.for_user("user_42"), tracing_disabled=True)  # doctest: +SKIP
    >>> Runner.run_sync(agent, "Hi", run_config=config).final_output  # doctest: +SKIP

Models use Chat Completions (`OpenAIChatCompletionsModel`); Wattfare has no Responses API. A refusal is the
`openai.APIStatusError` the SDK raises, with Wattfare's code in `exc.code` (`budget_exceeded`, `not_connected`,
`funding_invalid`, `grant_invalid`: status 402; `budget_busy`: 429; ...). It reaches you once: nothing retries a
402. Tracing is yours to set (`RunConfig(tracing_disabled=True)` or `agents.set_tracing_disabled(True)`); this
package never changes it.
"""

from __future__ import annotations

from wattfare_agents._version import __version__
from wattfare_agents.provider import WattfareModelProvider, wattfare_model

__all__ = ["WattfareModelProvider", "__version__", "wattfare_model"]
