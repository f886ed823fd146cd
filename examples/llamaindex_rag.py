"""Retrieval-augmented answers with LlamaIndex, where the embeddings and the answer are paid from your user's budget.

Run `make dev` in another terminal, then:
    set -a; . .wattfare/dev.env; set +a; python examples/llamaindex_rag.py [app_user_id]

The documents are embedded into a `VectorStoreIndex` with `WattfareEmbedding`, the question is embedded and
answered by `WattfareLLM` over the closest passages: every request is charged to the same user, and the
script prints what each model cost them. A user who has not connected a budget (or has revoked it) gets the
"Connect AI budget" link instead of an answer; one whose cap is spent, when it resets.
"""

from __future__ import annotations

import sys
import uuid

from llama_index.core import Document, VectorStoreIndex

from wattfare import BudgetExceededError, NotConnectedError, Wattfare
from wattfare_llamaindex import WattfareEmbedding, WattfareLLM

DOCUMENTS = [
    "Wattfare meters every model call against the end user's monthly cap, which the user sets themselves.",
    "A spent cap is refused with budget_exceeded and never retried; the cap resets on the first of the month.",
    "Test keys are answered by the sandbox: offline, free and deterministic, priced at each model's real price.",
    "Members fund their budget with operator credits or by linking their own OpenRouter account.",
]
QUESTION = "What happens when a user's cap is spent?"


def main(app_user_id: str) -> int:
    """Index DOCUMENTS and answer QUESTION for `app_user_id`, charged to their budget; the exit status says how."""
    wf = Wattfare()  # reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL, as the LlamaIndex classes do
    embed_model = WattfareEmbedding(model="openai/text-embedding-3-small", user_id=app_user_id)
    llm = WattfareLLM(model="openai/gpt-4o-mini", user_id=app_user_id)
    try:
        index = VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS], embed_model=embed_model)
        answer = index.as_query_engine(llm=llm, similarity_top_k=2).query(QUESTION)
        print(f"Q: {QUESTION}\nA: {answer}")
        for source in answer.source_nodes:
            print(f"  [source {source.score:.3f}] {source.get_content()}")
        for row in wf.usage(app_user_id).data:
            print(f"{row.model}: {row.requests} request(s), ${row.cost_usd}")
        status = wf.user(app_user_id).status()
        print(f"{app_user_id} has spent ${status.spent_usd} this month; ${status.remaining_usd} left")
        return 0
    except NotConnectedError:
        # Live keys: the user connects a budget in Wattfare's popup (test keys connect new users by themselves).
        session = wf.create_session(app_user_id, monthly_usd="5")
        print(f"{app_user_id} has not connected an AI budget: open {session.connect_url}")
        return 2
    except BudgetExceededError as exc:
        print(f"{app_user_id}'s monthly AI budget is spent; it resets at {exc.resets_at}")
        return 3
    finally:
        embed_model.close()
        llm.close()
        wf.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else f"user_{uuid.uuid4().hex[:8]}"))
