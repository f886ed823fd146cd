"""`WattfareEmbedding` where LlamaIndex users look for integrations: `from llama_index.embeddings.wattfare import ...`.

The same class as `wattfare_llamaindex.WattfareEmbedding`.
"""

from __future__ import annotations

from wattfare_llamaindex import WattfareEmbedding

__all__ = ["WattfareEmbedding"]
