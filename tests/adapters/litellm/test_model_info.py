"""`register_models`: LiteLLM's model info and `supports_*` checks for `wattfare/<model>`, from Wattfare's list."""

# litellm re-exports its helpers without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import litellm
import pytest

import wattfare
import wattfare_litellm
from tests.adapters.litellm.conftest import MODEL
from tests.support.wattfare_server import ServerProcess
from wattfare import AsyncWattfare, Wattfare
from wattfare_litellm import WattfareLLM

pytestmark = pytest.mark.xdist_group("litellm")

# Two models as Wattfare lists them (OpenRouter's `/models` format); names no other test registers.
LISTING: list[dict[str, Any]] = [
    {
        "id": "acme/sees-and-calls",
        "object": "model",
        "created": 1,
        "owned_by": "acme",
        "context_length": 200_000,
        "pricing": {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "0.0000003"},
        "top_provider": {"max_completion_tokens": 64_000},
        "architecture": {"input_modalities": ["text", "image", "file"], "output_modalities": ["text"]},
        "supported_parameters": ["max_tokens", "tools", "tool_choice", "structured_outputs", "reasoning"],
    },
    {
        "id": "acme/text-only",
        "object": "model",
        "created": 1,
        "owned_by": "acme",
        "context_length": 8_192,
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "top_provider": {"max_completion_tokens": None},
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "supported_parameters": ["max_tokens", "temperature"],
    },
]


@pytest.fixture(autouse=True)
def registered(provider: WattfareLLM) -> WattfareLLM:
    """The `wattfare` provider, registered as `register_models` requires (the provider map is restored after)."""
    return provider


def listing_client(listing: list[dict[str, Any]]) -> Wattfare:
    """An SDK client whose server answers `GET /models` with `listing`."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/api/v1/models")
        return httpx.Response(200, json={"object": "list", "data": listing})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return Wattfare("sk_test_listing", "http://wattfare.test", http_client=http)


# ---------------------------------------------------------------- from the listing


def test_a_listed_models_info_is_its_context_window_limit_and_price() -> None:
    with listing_client(LISTING) as client:
        names = wattfare_litellm.register_models(client)

    assert names == ["wattfare/acme/sees-and-calls", "wattfare/acme/text-only"]
    info = litellm.get_model_info("wattfare/acme/sees-and-calls")
    assert (info["key"], info["litellm_provider"], info["mode"]) == ("wattfare/acme/sees-and-calls", "wattfare", "chat")
    assert (info["max_input_tokens"], info["max_output_tokens"], info["max_tokens"]) == (200_000, 64_000, 64_000)
    assert (info["input_cost_per_token"], info["output_cost_per_token"]) == (3e-06, 1.5e-05)
    assert info.get("cache_read_input_token_cost") == 3e-07
    assert info.get("cache_creation_input_token_cost") == 3e-06  # unpriced: the prompt price, as Wattfare meters it
    text_only = litellm.get_model_info("wattfare/acme/text-only")
    assert (text_only["max_input_tokens"], text_only["max_output_tokens"]) == (8_192, None)


def test_supports_checks_answer_from_the_listing() -> None:
    with listing_client(LISTING) as client:
        wattfare_litellm.register_models(client)

    rich, plain = "wattfare/acme/sees-and-calls", "wattfare/acme/text-only"
    assert litellm.supports_function_calling(rich) is True
    assert litellm.get_model_info(rich).get("supports_tool_choice") is True
    assert litellm.supports_vision(rich) is True
    assert litellm.supports_pdf_input(rich) is True
    assert litellm.supports_response_schema(rich) is True
    assert litellm.supports_reasoning(rich) is True
    assert litellm.supports_function_calling(plain) is False
    assert litellm.supports_vision(plain) is False
    assert litellm.supports_response_schema(plain) is False
    # The provider may also be named apart from the model, as LiteLLM allows.
    assert litellm.supports_function_calling("acme/sees-and-calls", custom_llm_provider="wattfare") is True


def test_a_listing_without_capabilities_leaves_them_unset() -> None:
    bare = {key: value for key, value in LISTING[0].items() if key not in ("architecture", "supported_parameters")}
    with listing_client([{**bare, "id": "acme/undescribed"}]) as client:
        wattfare_litellm.register_models(client)

    info = litellm.get_model_info("wattfare/acme/undescribed")
    assert info["max_input_tokens"] == 200_000
    assert info.get("supports_function_calling") is None
    assert info.get("supports_vision") is None


def test_registering_leaves_other_providers_models_alone() -> None:
    openai_row = json.dumps(litellm.model_cost["gpt-4o-mini"], sort_keys=True, default=str)
    listed = [{**LISTING[0], "id": "openai/gpt-4o-mini", "pricing": {"prompt": "1", "completion": "2"}}]

    with listing_client(listed) as client:
        wattfare_litellm.register_models(client)

    assert json.dumps(litellm.model_cost["gpt-4o-mini"], sort_keys=True, default=str) == openai_row
    assert litellm.get_model_info("openai/gpt-4o-mini")["litellm_provider"] == "openai"
    assert litellm.get_model_info("wattfare/openai/gpt-4o-mini")["input_cost_per_token"] == 1.0


def test_a_model_wattfare_does_not_list_stays_unknown() -> None:
    with listing_client(LISTING) as client:
        wattfare_litellm.register_models(client)

    assert litellm.supports_function_calling("wattfare/acme/not-listed") is False
    with pytest.raises(Exception, match="isn't mapped yet"):
        litellm.get_model_info("wattfare/acme/not-listed")


def test_registering_models_before_the_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", [])

    with listing_client(LISTING) as client, pytest.raises(wattfare.UsageError, match=r"register\(\) before"):
        wattfare_litellm.register_models(client)


# ---------------------------------------------------------------- from a real Wattfare server


def test_every_model_the_server_lists_is_registered(wattfare_server: ServerProcess, wattfare: Wattfare) -> None:
    listed = {model.id: model for model in wattfare.models()}

    names = wattfare_litellm.register_models(wattfare)

    assert names == [f"wattfare/{model_id}" for model_id in listed]
    mini = listed["openai/gpt-4o-mini"]
    info = litellm.get_model_info("wattfare/openai/gpt-4o-mini")
    assert info["max_input_tokens"] == mini.context_length
    assert Decimal(str(info["input_cost_per_token"])) == mini.pricing.prompt
    assert Decimal(str(info["output_cost_per_token"])) == mini.pricing.completion


def test_without_a_client_the_list_is_read_with_the_environments_key(
    wattfare_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", wattfare_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", wattfare_server.base_url)

    names = wattfare_litellm.register_models()

    assert f"wattfare/{MODEL}" in names
    assert litellm.get_model_info(f"wattfare/{MODEL}")["litellm_provider"] == "wattfare"


@pytest.mark.anyio
async def test_aregister_models_reads_the_list_with_the_async_client(wattfare_server: ServerProcess) -> None:
    async with AsyncWattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        names = await wattfare_litellm.aregister_models(client)

    assert f"wattfare/{MODEL}" in names


def test_the_servers_listing_says_which_models_call_tools_and_see_images(wattfare: Wattfare) -> None:
    wattfare_litellm.register_models(wattfare)

    # openai/gpt-4o: a model no test above registers with capabilities of its own.
    assert litellm.supports_function_calling("wattfare/openai/gpt-4o") is True
    assert litellm.supports_vision("wattfare/openai/gpt-4o") is True


def test_a_registered_models_calls_still_cost_what_wattfare_charged(
    credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    # A map price a million times Wattfare's: the call's cost must still be the charge Wattfare metered.
    wrong_price = [{**LISTING[0], "id": MODEL, "pricing": {"prompt": "1", "completion": "1"}}]
    with listing_client(wrong_price) as client:
        wattfare_litellm.register_models(client)

    reply: Any = litellm.completion(
        model=f"wattfare/{MODEL}", messages=[{"role": "user", "content": "Say hi"}], user=user_id, **credentials
    )

    [row] = wattfare.usage(user_id).data
    assert 0 < row.cost_usd < Decimal("0.01")
    assert reply._hidden_params["response_cost"] == pytest.approx(float(row.cost_usd))
