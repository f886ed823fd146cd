"""ChatWattfare: a native LangChain chat model whose calls are paid from your users' Wattfare budgets.

    >>> from wattfare_langchain import ChatWattfare
    >>> llm = ChatWattfare(model="openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP
    >>> llm.invoke("Hello").response_metadata["wattfare"]["cost_usd"]  # doctest: +SKIP
    '0.0000123'

Errors are the core SDK's typed exceptions (`wattfare.NotConnectedError`, `wattfare.BudgetExceededError`, ...).
"""

from __future__ import annotations

from wattfare_langchain._version import __version__
from wattfare_langchain.chat_models import ChatWattfare

__all__ = ["ChatWattfare", "__version__"]
