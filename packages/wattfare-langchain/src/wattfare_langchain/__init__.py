"""ChatWattfare and WattfareEmbeddings: a native LangChain chat model and embeddings paid from your users' budgets.

    >>> from wattfare_langchain import ChatWattfare
    >>> llm = ChatWattfare(model="openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP
    >>> llm.invoke("Hello").response_metadata["wattfare"]["cost_usd"]  # doctest: +SKIP
    '0.0000123'
    >>> from wattfare_langchain import WattfareEmbeddings
    >>> embeddings = WattfareEmbeddings(model="openai/text-embedding-3-small", user_id="user_42")  # doctest: +SKIP
    >>> embeddings.embed_query("Hello")[:2]  # doctest: +SKIP
    [0.0123, -0.0456]

Errors are the core SDK's typed exceptions (`wattfare.NotConnectedError`, `wattfare.BudgetExceededError`, ...).
"""

from __future__ import annotations

from wattfare_langchain._version import __version__
from wattfare_langchain.chat_models import ChatWattfare
from wattfare_langchain.embeddings import WattfareEmbeddings

__all__ = ["ChatWattfare", "WattfareEmbeddings", "__version__"]
