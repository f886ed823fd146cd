"""Wattfare for LlamaIndex: `WattfareLLM` and `WattfareEmbedding`, whose calls are paid from your users' budgets.

    >>> from wattfare_llamaindex import WattfareLLM  # or: from llama_index.llms.wattfare import WattfareLLM
    >>> llm = WattfareLLM(model="openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP
    >>> from wattfare_llamaindex import WattfareEmbedding  # or: from llama_index.embeddings.wattfare import ...
    >>> embed_model = WattfareEmbedding(model="openai/text-embedding-3-small", user_id="user_42")  # doctest: +SKIP

The LLM drops into `FunctionAgent`, `AgentWorkflow`, `ReActAgent`, query engines and structured output, the
embedding model into vector indexes and ingestion pipelines; both raise Wattfare's typed errors
(`NotConnectedError`, `BudgetExceededError`, ...) unchanged.
"""

from __future__ import annotations

from wattfare_llamaindex._embedding import WattfareEmbedding
from wattfare_llamaindex._llm import WattfareLLM
from wattfare_llamaindex._version import __version__

__all__ = ["WattfareEmbedding", "WattfareLLM", "__version__"]
