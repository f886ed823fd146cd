"""What a LlamaIndex user installs: the namespace import works, and nothing reaches beyond this machine.

llama-index-core loads tiktoken encodings (token counting, chat memory) and NLTK data (sentence splitting)
at run time, downloading them when absent; it ships both in `llama_index/core/_static`. These tests run
the adapter's paths that load them in a fresh interpreter whose sockets refuse everything.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llama_index.core

import wattfare_llamaindex
from wattfare_llamaindex import WattfareEmbedding, WattfareLLM

PACKAGE = Path(__file__).resolve().parents[3] / "packages" / "wattfare-llamaindex" / "src"

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("this interpreter has no network")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    socket.create_connection = refuse

    from llama_index.core import Document, SummaryIndex
    from llama_index.core.callbacks import TokenCountingHandler
    from llama_index.core.memory import ChatMemoryBuffer
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.utils import get_tokenizer

    from wattfare_llamaindex import WattfareLLM

    llm = WattfareLLM(
        model="openai/gpt-4o-mini", user_id="u", secret_key="sk_test_x", context_window=4000, max_tokens=100
    )
    assert len(get_tokenizer()("Wattfare pays for this sentence.")) > 3
    assert ChatMemoryBuffer.from_defaults(llm=llm).token_limit == 3000
    TokenCountingHandler()
    nodes = SentenceSplitter(chunk_size=64, chunk_overlap=0).get_nodes_from_documents(
        [Document(text="One sentence here. Another one there. " * 20)]
    )
    assert len(nodes) > 1
    SummaryIndex(nodes)
    print("offline ok")
    """
)


def test_tokenizers_and_sentence_data_load_from_llamaindexs_bundled_copies_without_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOKEN_", "NLTK_", "WATTFARE_"))}
    # No user-level caches either: only what the installed packages ship may be used.
    env |= {"HOME": str(tmp_path), "TMPDIR": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "offline ok"


def test_llamaindex_users_import_it_from_the_integrations_namespace() -> None:
    from llama_index.llms.wattfare import WattfareLLM as FromNamespace

    assert FromNamespace is WattfareLLM


def test_llamaindex_users_import_the_embedding_model_from_the_integrations_namespace() -> None:
    from llama_index.embeddings.wattfare import WattfareEmbedding as FromNamespace

    assert FromNamespace is WattfareEmbedding
    assert (PACKAGE / "llama_index" / "embeddings" / "wattfare" / "py.typed").is_file()


def test_the_namespace_packages_are_shared_not_shadowed() -> None:
    # An __init__.py in llama_index/, llama_index/llms/ or llama_index/embeddings/ would hide llama-index-core and
    # every other integration.
    assert not (PACKAGE / "llama_index" / "__init__.py").exists()
    assert not (PACKAGE / "llama_index" / "llms" / "__init__.py").exists()
    assert not (PACKAGE / "llama_index" / "embeddings" / "__init__.py").exists()
    namespace = importlib.import_module("llama_index")
    assert getattr(namespace, "__file__", None) is None
    assert {str(PACKAGE / "llama_index"), str(Path(llama_index.core.__file__).parents[1])} <= set(namespace.__path__)
    assert wattfare_llamaindex.__all__ == ["WattfareEmbedding", "WattfareLLM", "__version__"]
