"""Wattfare for LlamaIndex: `WattfareLLM`, a function-calling LLM whose calls are paid from your users' budgets.

    >>> from wattfare_llamaindex import WattfareLLM  # or: from llama_index.llms.wattfare import WattfareLLM
    >>> llm = WattfareLLM(model="openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP

It drops into `FunctionAgent`, `AgentWorkflow`, `ReActAgent`, query engines and structured output, and
raises Wattfare's typed errors (`NotConnectedError`, `BudgetExceededError`, ...) unchanged.
"""

from __future__ import annotations

from wattfare_llamaindex._llm import WattfareLLM
from wattfare_llamaindex._version import __version__

__all__ = ["WattfareLLM", "__version__"]
