"""WattfareLLM's parts without a server: messages to the wire, tool calls back, the model catalog, the clients."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS

from wattfare import (
    APIConnectionError,
    AsyncWattfare,
    AuthenticationError,
    ModelInfo,
    ModelPricing,
    TopProvider,
    UsageError,
)
from wattfare_llamaindex import WattfareLLM
from wattfare_llamaindex._catalog import RETRY_AFTER_SECONDS, ModelCatalog, ModelLimits
from wattfare_llamaindex._connection import Connection
from wattfare_llamaindex._messages import to_wire_messages
from wattfare_llamaindex._tools import keep_first_tool_call, resolve_tool_choice, tool_selections

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def refusing_transport() -> list[httpx.Request]:
    """The requests `offline_llm` was asked to send (and refused)."""
    return []


def offline_llm(seen: list[httpx.Request], **kwargs: Any) -> WattfareLLM:
    """A WattfareLLM whose every request is logged and refused (HTTP 401), never sent."""

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": {"code": "auth", "message": "no", "type": "auth", "param": None}})

    return WattfareLLM(
        model="openai/gpt-4o-mini",
        user_id="u_1",
        secret_key="sk_test_offline",
        http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
        **kwargs,
    )


# ---------------------------------------------------------------- messages to the wire


def test_text_messages_go_out_as_plain_strings_in_wire_roles() -> None:
    wire = to_wire_messages(
        [
            ChatMessage(role=MessageRole.DEVELOPER, content="Rules"),
            ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="one"), TextBlock(text="two")]),
            ChatMessage(role=MessageRole.CHATBOT, content="Sure", additional_kwargs={"name": "bot", "other": 1}),
        ]
    )
    assert wire == [
        {"role": "developer", "content": "Rules"},
        {"role": "user", "content": "one\ntwo"},
        {"role": "assistant", "name": "bot", "content": "Sure"},
    ]


def test_an_image_goes_out_as_a_content_part_with_its_data() -> None:
    [wire] = to_wire_messages(
        [
            ChatMessage(
                role=MessageRole.USER, blocks=[TextBlock(text="What is this?"), ImageBlock(image=PNG, detail="low")]
            )
        ]
    )
    text, image = wire["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["type"] == "image_url"
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert image["image_url"]["detail"] == "low"


def test_an_image_url_is_sent_as_the_url() -> None:
    [wire] = to_wire_messages(
        [ChatMessage(role=MessageRole.USER, blocks=[ImageBlock(url="https://example.com/a.png")])]
    )
    assert wire["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]


def test_thinking_is_not_sent_back_and_tool_calls_are() -> None:
    message = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            ThinkingBlock(content="hmm"),
            ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 1, "b": 2}),
            ToolCallBlock(tool_call_id="call_2", tool_name="add", tool_kwargs='{"a": 3'),
        ],
    )
    [wire] = to_wire_messages([message])
    assert wire == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": '{"a": 3'}},
        ],
    }


def test_tool_calls_from_older_integrations_are_sent_as_they_are() -> None:
    legacy = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    [wire] = to_wire_messages(
        [ChatMessage(role=MessageRole.ASSISTANT, content="Calling", additional_kwargs={"tool_calls": [legacy]})]
    )
    assert wire == {"role": "assistant", "content": "Calling", "tool_calls": [legacy]}


def test_a_tool_result_answers_its_call() -> None:
    [wire] = to_wire_messages(
        [ChatMessage(role=MessageRole.TOOL, content="42", additional_kwargs={"tool_call_id": "call_1"})]
    )
    assert wire == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


def test_a_block_the_wire_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="VideoBlock"):
        to_wire_messages([ChatMessage(role=MessageRole.USER, blocks=[VideoBlock(url="https://example.com/v.mp4")])])


# ---------------------------------------------------------------- tool calls back


@pytest.mark.parametrize(
    ("tool_choice", "tool_required", "expected"),
    [
        (None, False, "auto"),
        (None, True, "required"),
        ("none", True, "none"),
        ("get_weather", False, {"type": "function", "function": {"name": "get_weather"}}),
        ({"type": "function", "function": {"name": "x"}}, False, {"type": "function", "function": {"name": "x"}}),
    ],
)
def test_tool_choice_follows_llamaindex_conventions(tool_choice: object, tool_required: bool, expected: object) -> None:
    assert resolve_tool_choice(tool_choice, tool_required=tool_required) == expected  # pyright: ignore[reportArgumentType]


def test_tool_calls_are_read_from_older_integrations_additional_kwargs() -> None:
    message = ChatMessage(
        role=MessageRole.ASSISTANT,
        additional_kwargs={
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": "y", "n'}}]
        },
    )
    [selection] = tool_selections(ChatResponse(message=message), error_on_no_tool_call=True)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == ("c1", "f", {"x": "y"})


def test_arguments_not_yet_readable_are_empty_not_an_error() -> None:
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[ToolCallBlock(tool_name="f", tool_kwargs='{"')])
    [selection] = tool_selections(ChatResponse(message=message), error_on_no_tool_call=True)
    assert selection.tool_kwargs == {}


def test_only_the_first_tool_call_is_kept_when_parallel_calls_are_not_allowed() -> None:
    calls = [ToolCallBlock(tool_call_id=f"c{i}", tool_name="f", tool_kwargs="{}") for i in range(3)]
    legacy = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in range(3)]
    message = ChatMessage(
        role=MessageRole.ASSISTANT, blocks=[TextBlock(text="t"), *calls], additional_kwargs={"tool_calls": legacy}
    )
    kept = keep_first_tool_call(ChatResponse(message=message)).message
    assert [block.tool_call_id for block in kept.blocks if isinstance(block, ToolCallBlock)] == ["c0"]
    assert kept.content == "t"
    assert [call["id"] for call in kept.additional_kwargs["tool_calls"]] == ["c0"]


# ---------------------------------------------------------------- the model catalog


def model(model_id: str, context: int | None, max_output: int | None) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        context_length=context,
        pricing=ModelPricing(prompt=Decimal("0.000001"), completion=Decimal("0.000002")),
        top_provider=TopProvider(max_completion_tokens=max_output),
    )


class FakeModelList:
    """Wattfare's model list, counting reads; fails while `failing`."""

    def __init__(self, models: list[ModelInfo]) -> None:
        self.models = models
        self.reads = 0
        self.failing = False

    def __call__(self) -> list[ModelInfo]:
        self.reads += 1
        if self.failing:
            raise APIConnectionError("unreachable")
        return self.models


def test_the_catalog_reads_the_model_list_once() -> None:
    models = FakeModelList([model("a/b", 1000, 100), model("c/d", None, None)])
    catalog = ModelCatalog(models)
    assert catalog.known("a/b") is None
    assert catalog.lookup("a/b") == ModelLimits(1000, 100)
    assert catalog.lookup("c/d") == ModelLimits(None, None)
    assert catalog.known("a/b") == ModelLimits(1000, 100)
    assert models.reads == 1


def test_the_catalog_retries_an_unreadable_list_only_after_a_pause(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    models = FakeModelList([model("a/b", 1000, 100)])
    models.failing = True
    catalog = ModelCatalog(models, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="wattfare_llamaindex"):
        assert catalog.lookup("a/b") is None
    assert "could not read Wattfare's model list" in caplog.text
    models.failing = False
    now[0] += RETRY_AFTER_SECONDS - 1
    assert catalog.lookup("a/b") is None
    assert models.reads == 1
    now[0] += 1
    assert catalog.lookup("a/b") == ModelLimits(1000, 100)
    assert models.reads == 2


def test_an_unlisted_model_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    catalog = ModelCatalog(FakeModelList([model("a/b", 1000, 100)]))
    with caplog.at_level(logging.WARNING, logger="wattfare_llamaindex"):
        assert catalog.lookup("x/y") is None
    assert "'x/y' is not in Wattfare's model list" in caplog.text


# ---------------------------------------------------------------- the LLM without a server


def test_explicit_limits_need_no_model_list(refusing_transport: list[httpx.Request]) -> None:
    llm = offline_llm(refusing_transport, context_window=8000, max_tokens=500)
    metadata = llm.metadata
    assert (metadata.context_window, metadata.num_output) == (8000, 500)
    assert refusing_transport == []
    llm.close()


def test_events_describe_the_llm_without_reading_the_network_or_the_key(
    refusing_transport: list[httpx.Request],
) -> None:
    llm = offline_llm(refusing_transport)
    payload = llm.to_payload()
    assert payload["model_name"] == "openai/gpt-4o-mini"
    assert payload["class_name"] == "WattfareLLM"
    assert "sk_test_offline" not in repr(payload)
    assert "sk_test_offline" not in repr(llm)
    assert "sk_test_offline" not in llm.to_json()
    assert refusing_transport == []
    llm.close()


def test_an_unreadable_model_list_falls_back_to_llamaindex_defaults(refusing_transport: list[httpx.Request]) -> None:
    llm = offline_llm(refusing_transport)
    metadata = llm.metadata
    assert (metadata.context_window, metadata.num_output) == (DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS)
    assert metadata.is_function_calling_model is True
    assert [request.url.path for request in refusing_transport] == ["/api/v1/models"]
    llm.close()


def test_the_key_and_server_come_from_the_environment_like_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATTFARE_SECRET_KEY", raising=False)
    with pytest.raises(UsageError, match="no secret key"):
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1")
    monkeypatch.setenv("WATTFARE_SECRET_KEY", "sk_test_from_env")
    monkeypatch.setenv("WATTFARE_BASE_URL", "http://127.0.0.1:9999")
    llm = WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1")
    assert "http://127.0.0.1:9999/api/v1" in repr(llm._connection)  # pyright: ignore[reportPrivateUsage]
    llm.close()


def test_a_publishable_key_or_an_empty_user_is_refused_at_construction() -> None:
    with pytest.raises(UsageError, match="publishable"):
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="pk_test_abc")
    with pytest.raises(UsageError, match="app_user_id"):
        WattfareLLM(model="openai/gpt-4o-mini", user_id="", secret_key="sk_test_abc")
    llm = WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc")
    with pytest.raises(UsageError, match="app_user_id"):
        llm.for_user("")
    llm.close()


# ---------------------------------------------------------------- LlamaIndex OpenAI's constructor arguments


def test_openai_names_for_the_key_and_server_set_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", "sk_test_from_env")
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": {"code": "auth", "message": "no"}})

    llm = WattfareLLM(
        model="openai/gpt-4o-mini",
        user_id="u_1",
        api_key="sk_test_given",
        api_base="http://127.0.0.1:9",
        max_new_tokens=64,
        context_window=1000,
        http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
    )
    with pytest.raises(AuthenticationError):
        llm.complete("Hi")
    (request,) = seen
    assert request.headers["authorization"] == "Bearer sk_test_given"
    assert str(request.url) == "http://127.0.0.1:9/api/v1/chat/completions"
    assert json.loads(request.content)["max_tokens"] == 64
    llm.close()


def test_openai_names_for_request_fields_are_sent_from_additional_kwargs() -> None:
    llm = WattfareLLM(
        model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc", logprobs=True, reasoning_effort="low"
    )
    assert llm.additional_kwargs == {"logprobs": True, "reasoning_effort": "low"}
    llm.close()


@pytest.mark.parametrize(
    ("argument", "advice"),
    [
        ("default_headers", "headers="),
        ("api_version", "remove it"),
        ("reuse_client", "remove it"),
        ("openai_client", "http_client="),
        ("async_openai_client", "async_http_client="),
        ("modalities", "text"),
    ],
)
def test_openai_arguments_without_a_meaning_here_are_refused_with_what_to_do(argument: str, advice: str) -> None:
    options: dict[str, Any] = {argument: "x"}  # any value: the name alone is refused
    with pytest.raises(UsageError, match=argument) as refused:
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc", **options)
    assert advice in str(refused.value)


def test_an_unknown_argument_is_refused_and_the_message_names_additional_kwargs() -> None:
    with pytest.raises(UsageError, match="did you mean temperature") as refused:
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc", temprature=0.2)
    assert "additional_kwargs" in str(refused.value)


def test_a_key_given_under_both_names_is_refused() -> None:
    with pytest.raises(UsageError, match="secret_key is given twice"):
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc", api_key="sk_test_other")


@pytest.mark.parametrize("name", ["api_key", "secret_key", "api_base", "timeout", "default_headers"])
def test_client_settings_are_refused_in_additional_kwargs(name: str) -> None:
    with pytest.raises(UsageError, match=f"{name} in additional_kwargs"):
        WattfareLLM(model="openai/gpt-4o-mini", user_id="u_1", secret_key="sk_test_abc", additional_kwargs={name: "x"})


def test_client_settings_are_refused_as_call_arguments(refusing_transport: list[httpx.Request]) -> None:
    llm = offline_llm(refusing_transport, context_window=1000, max_tokens=10)
    with pytest.raises(UsageError, match="api_key in the call's arguments"):
        llm.complete("Hi", api_key="sk_test_abc")
    with pytest.raises(UsageError, match="api_key in the call's arguments"):
        llm.chat([ChatMessage(role=MessageRole.USER, content="Hi")], api_key="sk_test_abc")
    assert refusing_transport == []
    llm.close()


def test_a_deep_copy_shares_the_connection_like_a_per_user_copy(refusing_transport: list[httpx.Request]) -> None:
    llm = offline_llm(refusing_transport, temperature=0.1)
    twin = copy.deepcopy(llm)
    assert (twin.model, twin.user_id, twin.temperature) == (llm.model, llm.user_id, 0.1)
    assert twin._connection is llm._connection is llm.for_user("u_2")._connection  # pyright: ignore[reportPrivateUsage]
    llm.close()


def test_each_event_loop_gets_its_own_async_client() -> None:
    # Pooled connections belong to the loop that opened them: `asyncio.run` twice must not share a pool.
    connection = Connection(secret_key="sk_test_abc", base_url=None, timeout=5.0, max_retries=0)

    async def clients() -> tuple[AsyncWattfare, AsyncWattfare]:
        return connection.async_client(), connection.async_client()

    first_loop = asyncio.run(clients())
    second_loop = asyncio.run(clients())
    assert first_loop[0] is first_loop[1]
    assert second_loop[0] is second_loop[1]
    assert first_loop[0] is not second_loop[0]
    connection.close()


def test_a_callers_async_http_client_is_used_on_every_loop() -> None:
    async def client_of(connection: Connection) -> AsyncWattfare:
        return connection.async_client()

    http = httpx.AsyncClient()
    connection = Connection(secret_key="sk_test_abc", base_url=None, timeout=5.0, max_retries=0, async_http_client=http)
    assert asyncio.run(client_of(connection)) is asyncio.run(client_of(connection))
    asyncio.run(http.aclose())
    connection.close()
