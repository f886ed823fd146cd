"""`litellm.embedding` / `aembedding` with `wattfare/<model>`, against a real Wattfare server in test mode."""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import base64
import struct
from decimal import Decimal
from typing import Any

import litellm
import litellm.main
import pytest
from litellm.llms.custom_llm import CustomLLM

from tests.adapters.litellm.request_log import RequestLog
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_litellm import WattfareBudgetExceededError, WattfareLLM, WattfareNotConnectedError
from wattfare_litellm._call import EmbeddingCall, read_embedding_call

pytestmark = pytest.mark.xdist_group("litellm")

EMBEDDER = "openai/text-embedding-3-small"
TEXTS = ["Wattfare meters embeddings", "charged to one user"]
# What litellm's calls return is read as Any (as in test_completions): its `@client` wrapper types every call as maybe
# a coroutine.


def charged(wattfare: Wattfare, user_id: str) -> tuple[int, Decimal]:
    """Requests and spend the ledger holds for a user."""
    rows = wattfare.usage(user_id).data
    return sum(r.requests for r in rows), sum((r.cost_usd for r in rows), Decimal(0))


def exact_cost(response: Any) -> Decimal:
    return Decimal(response._hidden_params["additional_headers"]["llm_provider-wattfare-cost-usd"])


def test_embedding_is_charged_to_the_user_named_by_litellms_user_param(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    reply: Any = litellm.embedding(
        model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, dimensions=16, **credentials
    )

    assert reply.model == EMBEDDER
    assert [item["index"] for item in reply.data] == [0, 1]
    assert [len(item["embedding"]) for item in reply.data] == [16, 16]
    assert all(isinstance(value, float) for value in reply.data[0]["embedding"])
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == 0
    assert [(r.app_user_id, r.model) for r in request_log.embeddings()] == [(user_id, EMBEDDER)]
    requests, spent = charged(wattfare, user_id)
    assert requests == 1
    assert spent > 0
    assert exact_cost(reply) == spent
    assert Decimal(str(reply.usage.cost)) == spent
    assert reply._hidden_params["response_cost"] == pytest.approx(float(spent))
    assert reply._hidden_params["additional_headers"]["llm_provider-wattfare-request-id"].startswith("req_")
    [row] = wattfare.usage(user_id).data
    assert row.endpoint in (None, "embeddings")


@pytest.mark.anyio
async def test_async_embedding_is_charged_to_the_user(
    async_provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    reply: Any = await litellm.aembedding(model=f"wattfare/{EMBEDDER}", input="one text", user=user_id, **credentials)

    assert len(reply.data) == 1
    assert len(reply.data[0]["embedding"]) > 0
    assert [r.app_user_id for r in request_log.embeddings()] == [user_id]
    assert Decimal(str(reply.usage.cost)) == exact_cost(reply) == charged(wattfare, user_id)[1] > 0


def test_base64_vectors_come_back_as_wattfare_sent_them(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    reply: Any = litellm.embedding(
        model=f"wattfare/{EMBEDDER}", input=["x"], user=user_id, dimensions=8, encoding_format="base64", **credentials
    )

    encoded = reply.data[0]["embedding"]
    assert isinstance(encoded, str)
    assert len(struct.unpack("<8f", base64.b64decode(encoded))) == 8


def test_the_same_texts_embed_to_the_same_vectors_sync_and_token_ids_are_accepted(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    first: Any = litellm.embedding(model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, **credentials)
    again: Any = litellm.embedding(model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, **credentials)
    tokens: Any = litellm.embedding(model=f"wattfare/{EMBEDDER}", input=[[9906, 1917]], user=user_id, **credentials)

    assert first.data[0]["embedding"] == again.data[0]["embedding"]
    assert len(tokens.data) == 1
    assert len(request_log.embeddings(user_id)) == 3


def test_a_call_without_a_user_is_refused_before_reaching_wattfare(
    provider: WattfareLLM, credentials: dict[str, str], request_log: RequestLog
) -> None:
    with pytest.raises(litellm.BadRequestError, match="pass user="):
        litellm.embedding(model=f"wattfare/{EMBEDDER}", input=TEXTS, **credentials)

    assert request_log.embeddings() == []


def test_an_unknown_param_is_refused_before_reaching_wattfare_or_dropped_when_asked(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    with pytest.raises(litellm.UnsupportedParamsError, match="does not send openai_api_key"):
        litellm.embedding(
            model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, openai_api_key="sk-leak", **credentials
        )
    assert request_log.embeddings() == []

    reply: Any = litellm.embedding(
        model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, input_type="query", drop_params=True, **credentials
    )

    assert len(reply.data) == 2
    assert [r.app_user_id for r in request_log.embeddings()] == [user_id], "dropping params kept the end user"


def test_client_settings_in_extra_body_are_refused(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    with pytest.raises(litellm.BadRequestError, match="api_key in extra_body"):
        litellm.embedding(
            model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, extra_body={"api_key": "x"}, **credentials
        )

    assert request_log.embeddings() == []


def test_a_malformed_dimensions_is_a_bad_request_before_reaching_wattfare(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    with pytest.raises(litellm.BadRequestError, match="dimensions"):
        litellm.embedding(model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, dimensions=0, **credentials)

    assert request_log.embeddings() == []


def test_a_chat_model_is_refused_as_a_bad_request(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    with pytest.raises(litellm.BadRequestError):
        litellm.embedding(model="wattfare/openai/gpt-4o-mini", input=TEXTS, user=user_id, **credentials)


def test_a_spent_cap_raises_budget_exceeded_once_whatever_the_retries(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.00000001")

    with pytest.raises(WattfareBudgetExceededError) as caught:
        litellm.embedding(
            model=f"wattfare/{EMBEDDER}",
            input=["a long text to embed " * 50],
            user=user_id,
            num_retries=3,
            max_retries=5,
            **credentials,
        )

    exc = caught.value
    assert isinstance(exc, litellm.BadRequestError)
    assert (exc.status_code, exc.wattfare_status_code, exc.code) == (400, 402, "budget_exceeded")
    assert exc.app_user_id == user_id
    assert exc.resets_at is not None
    assert len(request_log.embeddings(user_id)) == 1, "a 402 is never retried"


@pytest.mark.anyio
async def test_a_disconnected_user_raises_not_connected_once_async(
    async_provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    wattfare.user(user_id).embed(model=EMBEDDER, input="connects the test user")
    wattfare.user(user_id).disconnect()

    with pytest.raises(WattfareNotConnectedError):
        await litellm.aembedding(
            model=f"wattfare/{EMBEDDER}", input=TEXTS, user=user_id, num_retries=3, max_retries=5, **credentials
        )

    assert len(request_log.embeddings(user_id)) == 1
    assert charged(wattfare, user_id)[0] == 1  # only the connecting call


def test_a_router_never_retries_a_spent_cap_and_keeps_serving_other_users(
    provider: WattfareLLM, wattfare_server: ServerProcess, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    broke, paying = f"{user_id}_broke", f"{user_id}_paying"
    wattfare.create_session(broke, monthly_usd="0.00000001")
    deployment = {
        "model": f"wattfare/{EMBEDDER}",
        "api_key": wattfare_server.secret,
        "api_base": wattfare_server.base_url,
    }
    router = litellm.Router(
        model_list=[{"model_name": "embed", "litellm_params": deployment}],
        num_retries=2,
        retry_after=0,
        allowed_fails=0,
        cooldown_time=60,
    )

    long_text: list[object] = ["a long text to embed " * 50]
    for _ in range(3):
        with pytest.raises(WattfareBudgetExceededError):
            router.embedding(model="embed", input=long_text, user=broke)
    reply: Any = router.embedding(model="embed", input=[*TEXTS], user=paying)

    assert len(reply.data) == 2
    assert len(request_log.embeddings(broke)) == 3, "each refused call reached Wattfare once: no retries"
    assert [r.app_user_id for r in request_log.embeddings(paying)] == [paying]


# ---------------------------------------------------------------- the params route, and only for Wattfare


def test_litellms_own_embedding_params_stay_its_own_for_every_other_provider(
    provider: WattfareLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Other(CustomLLM):
        pass

    monkeypatch.setattr(
        litellm, "custom_provider_map", [*litellm.custom_provider_map, {"provider": "other", "custom_handler": Other()}]
    )
    route = litellm.main.get_optional_params_embeddings

    assert route(model=EMBEDDER, user="u", dimensions=8, custom_llm_provider="wattfare") == {
        "user": "u",
        "dimensions": 8,
    }
    assert route(model="text-embedding-3-small", user="u", custom_llm_provider="openai") == {"user": "u"}
    with pytest.raises(litellm.UnsupportedParamsError, match="not supported by other"):
        route(model="m", user="u", custom_llm_provider="other")


def test_building_more_handlers_routes_the_params_once(provider: WattfareLLM) -> None:
    route = litellm.main.get_optional_params_embeddings

    WattfareLLM()
    WattfareLLM()

    assert litellm.main.get_optional_params_embeddings is route


# ---------------------------------------------------------------- reading a call


class FakeLogging:
    """Stands in for LiteLLM's logging object, which records the call's `user`."""

    def __init__(self, user: str | None) -> None:
        self.model_call_details: dict[str, Any] = {"user": user}


def read(optional_params: dict[str, Any], litellm_params: object = None, user: str | None = None) -> EmbeddingCall:
    return read_embedding_call(
        model=EMBEDDER,
        input=TEXTS,
        optional_params=optional_params,
        logging_obj=FakeLogging(user),
        api_key="sk_test_1",
        api_base="http://wattfare.test",
        timeout=12.0,
        litellm_params=litellm_params,
    )


def test_a_call_reads_the_user_the_embedding_params_and_the_deployment() -> None:
    call = read({"user": "u1", "dimensions": 8, "encoding_format": "base64", "extra_body": {"provider": {"x": 1}}})

    assert (call.app_user_id, call.model, call.input) == ("u1", EMBEDDER, TEXTS)
    assert (call.dimensions, call.encoding_format, call.extra_body) == (8, "base64", {"provider": {"x": 1}})
    assert (call.client.secret_key, call.client.base_url, call.client.timeout) == (
        "sk_test_1",
        "http://wattfare.test",
        12.0,
    )
    assert read({}, user="u_logged").app_user_id == "u_logged"


def test_a_direct_calls_max_retries_reach_the_sdk_and_a_routers_retries_are_its_own() -> None:
    direct = read({"user": "u1"}, {"max_retries": 4})
    routed = read({"user": "u1"}, {"metadata": {"model_group": "embed", "max_retries": 3}})
    plain = read({"user": "u1"})

    assert (direct.client.max_retries, direct.client.busy_retries) == (4, None)
    # The Router retries (and falls back from) what it sees itself; the SDK retries only a busy budget, its way.
    assert (routed.client.max_retries, routed.client.busy_retries) == (0, 3)
    assert (plain.client.max_retries, plain.client.busy_retries) == (None, None)
