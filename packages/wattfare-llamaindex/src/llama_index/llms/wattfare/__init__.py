"""`WattfareLLM` where LlamaIndex users look for integrations: `from llama_index.llms.wattfare import WattfareLLM`.

The same class as `wattfare_llamaindex.WattfareLLM`.
"""

from __future__ import annotations

from wattfare_llamaindex import WattfareLLM

__all__ = ["WattfareLLM"]
