"""`examples/llamaindex_rag.py`, run for real against a `wattfare serve` process in test mode: a vector index built
with `WattfareEmbedding` and answered by `WattfareLLM`, both charged to the same user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.adapter_fixtures import LIVE
from tests.support.ledger import Ledger
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare.metering import usd_to_nanos

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_rag.py"
USER = "rag-example-user"
pytestmark = pytest.mark.xdist_group("llamaindex-server")


def run_example(server: ServerProcess, user: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    env |= {"WATTFARE_SECRET_KEY": server.secret, "WATTFARE_BASE_URL": server.base_url}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), user], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rag_example_embeds_and_answers_all_on_one_users_budget(llamaindex_server: ServerProcess) -> None:
    run = run_example(llamaindex_server, USER)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "Q: What happens when a user's cap is spent?" in run.stdout
    sources = [line for line in run.stdout.splitlines() if line.startswith("  [source ")]
    assert len(sources) == 2
    if not LIVE:
        assert run.stdout.split("\nA: ")[1].startswith("Sandbox reply to:")
    # The ledger: every row is this user's, the documents and the question embedded, the answer completed.
    ledger = Ledger(llamaindex_server.db_path)
    entries = ledger.entries(USER)
    assert {entry.app_user_id for entry in entries} == {USER}
    assert len(entries) == 3  # the documents in one batch, the question, the answer
    assert [entry.endpoint for entry in entries] == ["embeddings", "embeddings", "chat.completions"]
    assert all(entry.amount > 0 for entry in entries)
    assert sum(entry.completion_tokens for entry in entries) > 0
    ledger.assert_balanced(USER)
    # The usage API splits it by model, and (from a server that says) by endpoint.
    with Wattfare(llamaindex_server.secret, llamaindex_server.base_url) as wf:
        rows = {row.model: row for row in wf.usage(USER).data}
        spent = wf.user(USER).status().spent_usd
    embeddings, chat = rows["openai/text-embedding-3-small"], rows["openai/gpt-4o-mini"]
    assert (embeddings.requests, embeddings.completion_tokens) == (2, 0)
    assert chat.requests == 1
    if embeddings.endpoint is not None:
        assert (embeddings.endpoint, chat.endpoint) == ("embeddings", "chat.completions")
    assert set(rows) == {"openai/text-embedding-3-small", "openai/gpt-4o-mini"}
    assert usd_to_nanos(spent) == sum(entry.amount for entry in entries)
    assert embeddings.cost_usd + chat.cost_usd == spent > Decimal(0)
    assert f"openai/text-embedding-3-small: 2 request(s), ${embeddings.cost_usd}" in run.stdout
    assert f"{USER} has spent ${spent} this month" in run.stdout


def test_the_rag_example_sends_a_disconnected_user_to_connect_before_embedding_anything(
    llamaindex_server: ServerProcess,
) -> None:
    user = "rag-example-gone"
    with Wattfare(llamaindex_server.secret, llamaindex_server.base_url) as wf:
        wf.user(user).embed(model="openai/text-embedding-3-small", input="connects the test user")
        wf.user(user).disconnect()

        run = run_example(llamaindex_server, user)

        assert run.returncode == 2, run.stdout + run.stderr
        assert (
            f"{user} has not connected an AI budget: open {llamaindex_server.base_url}/connect?session=" in run.stdout
        )
        assert [row.requests for row in wf.usage(user).data] == [1]  # the refused embedding was not charged
