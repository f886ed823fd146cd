"""Embeddings through the LiteLLM proxy (a subprocess whose config names the `wattfare` handler), called with the
stock `openai` client: the handler the proxy imports routes LiteLLM's embedding params to itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.adapters.litellm.proxy_environment import Proxy, run_proxy
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

pytestmark = [pytest.mark.xdist_group("litellm"), pytest.mark.timeout(1200)]

CONFIG = """\
model_list:
  - model_name: embed
    litellm_params:
      model: wattfare/openai/text-embedding-3-small
      api_key: os.environ/WATTFARE_SECRET_KEY
      api_base: os.environ/WATTFARE_BASE_URL
litellm_settings:
  custom_provider_map:
    - provider: wattfare
      custom_handler: wattfare_litellm.wattfare_llm
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@pytest.fixture(scope="session")
def embedding_proxy(wattfare_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("litellm-embedding-proxy")
    config = Path(workdir) / "config.yaml"
    config.write_text(CONFIG)
    env = {"WATTFARE_SECRET_KEY": wattfare_server.secret, "WATTFARE_BASE_URL": wattfare_server.base_url}
    with run_proxy(config, workdir, env) as proxy:
        yield proxy


def test_the_proxy_embeds_charged_to_the_openai_user_field(
    embedding_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    raw = embedding_proxy.client.embeddings.with_raw_response.create(
        model="embed", input=["Caps hold.", "Users pay."], user=user_id, dimensions=8, encoding_format="float"
    )
    reply = raw.parse()

    assert [len(item.embedding) for item in reply.data] == [8, 8]
    [row] = wattfare.usage(user_id).data
    assert (row.model, row.requests) == ("openai/text-embedding-3-small", 1)
    assert Decimal(raw.headers["llm_provider-wattfare-cost-usd"]) == row.cost_usd > 0
    assert Decimal(raw.headers["x-litellm-response-cost"]) == row.cost_usd, "LiteLLM's spend tracking sees it"


def test_a_spent_cap_reaches_openai_clients_as_a_400_naming_budget_exceeded(
    embedding_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.00000001")

    with pytest.raises(openai.BadRequestError, match="budget_exceeded"):
        embedding_proxy.client.embeddings.create(model="embed", input=["a long text to embed " * 50], user=user_id)

    assert wattfare.usage(user_id).data == []
