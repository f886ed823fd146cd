from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, Field

from tests.server.upstream.exchange import chat_request, read_all, sse_data
from wattfare.server.upstream.sandbox.models import SandboxUpstream
from wattfare.server.upstream.sandbox.schema import value_for_schema

pytestmark = pytest.mark.anyio


class Cabin(Enum):
    ECONOMY = "economy"
    BUSINESS = "business"


class Address(BaseModel):
    street: str
    postcode: int = Field(ge=10000, le=99999)


class BookTrip(BaseModel):
    """Pydantic checks the arguments independently of the sandbox's schema reading."""

    city: str
    nights: int = Field(ge=2)
    budget: float = Field(gt=100)
    refundable: bool
    cabin: Cabin
    kind: Literal["trip"]
    tags: list[str] = Field(min_length=2)
    address: Address
    note: str | None = None


class Node(BaseModel):
    name: str
    children: list[Node]


class Weather(BaseModel):
    city: str
    celsius: float


def tool(name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": model.model_json_schema()}}


TOOLS = [tool("book_trip", BookTrip), tool("get_weather", Weather), tool("build_tree", Node)]


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": text}], "tools": TOOLS, **extra}


async def completion(sandbox: SandboxUpstream, payload: dict[str, Any]) -> ChatCompletion:
    response = await sandbox.send(chat_request(payload))
    assert response.status == 200
    return ChatCompletion.model_validate_json(await read_all(response))


def calls(answer: ChatCompletion) -> list[tuple[str, str]]:
    tool_calls = answer.choices[0].message.tool_calls or []
    return [(call.function.name, call.function.arguments) for call in tool_calls if call.type == "function"]


async def test_the_first_tool_is_called_with_arguments_valid_for_its_schema(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Plan a holiday in Lisbon please", tool_choice="auto"))

    [(name, arguments)] = calls(answer)
    trip = BookTrip.model_validate_json(arguments)
    assert name == "book_trip"
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.content is None
    assert trip.city in {"Plan", "holiday", "Lisbon"}
    assert (trip.nights, trip.refundable, trip.cabin, trip.kind) == (2, False, Cabin.ECONOMY, "trip")
    assert len(trip.tags) == 2
    assert trip.note is None


async def test_a_forced_tool_is_the_one_called(sandbox: SandboxUpstream) -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    answer = await completion(sandbox, chat("Anything at all", tool_choice=forced))

    [(name, arguments)] = calls(answer)
    assert name == "get_weather"
    assert Weather.model_validate_json(arguments).celsius == 1.5


async def test_tool_choice_required_calls_the_first_tool(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Anything at all", tool_choice="required"))

    assert [name for name, _ in calls(answer)] == ["book_trip"]


async def test_naming_several_tools_calls_them_in_parallel(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Use get_weather and build_tree for Oslo"))

    called = calls(answer)
    assert [name for name, _ in called] == ["get_weather", "build_tree"]
    Weather.model_validate_json(called[0][1])
    Node.model_validate_json(called[1][1])
    tool_calls = answer.choices[0].message.tool_calls or []
    assert len({call.id for call in tool_calls}) == 2


async def test_parallel_tool_calls_false_calls_only_one_tool(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Use get_weather and build_tree", parallel_tool_calls=False))

    assert [name for name, _ in calls(answer)] == ["get_weather"]


async def test_tool_choice_none_answers_in_text(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Use get_weather", tool_choice="none"))

    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"


async def test_after_a_tool_result_the_answer_is_text_that_quotes_it(sandbox: SandboxUpstream) -> None:
    first = await completion(sandbox, chat("Use get_weather"))
    [call] = first.choices[0].message.tool_calls or []
    messages = [
        {"role": "user", "content": "Use get_weather"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny in Oslo"},
    ]
    answer = await completion(sandbox, {**chat(""), "messages": messages})

    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content is not None
    assert answer.choices[0].message.content.startswith("Sandbox read the tool result: 18 degrees and sunny in Oslo")


async def test_streamed_tool_calls_reassemble_into_the_same_calls(sandbox: SandboxUpstream) -> None:
    payload = chat("Use get_weather and book_trip")
    whole = await completion(sandbox, payload)
    data = sse_data(await read_all(await sandbox.send(chat_request({**payload, "stream": True}))))
    parsed = [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]

    assembled: dict[int, dict[str, str]] = {}
    for chunk in parsed:
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.id is not None:
                assert delta.type == "function"
                assert delta.function is not None
                assert delta.function.arguments == ""
                assembled[delta.index] = {"id": delta.id, "name": delta.function.name or "", "arguments": ""}
            elif delta.function is not None:
                assembled[delta.index]["arguments"] += delta.function.arguments or ""
    expected = [
        {"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
        for call in whole.choices[0].message.tool_calls or []
        if call.type == "function"
    ]
    assert [assembled[index] for index in sorted(assembled)] == expected
    assert parsed[0].choices[0].delta.role == "assistant"
    assert parsed[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_arguments_count_a_token_per_four_characters(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Use get_weather"))

    [(_, arguments)] = calls(answer)
    assert answer.usage is not None
    assert answer.usage.completion_tokens == -(-len(arguments) // 4)


async def test_max_tokens_cuts_tool_arguments_with_finish_reason_length(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat("Use book_trip", max_tokens=3))

    [(_, arguments)] = calls(answer)
    assert len(arguments) == 12
    assert answer.choices[0].finish_reason == "length"


async def test_json_schema_response_format_gives_valid_json(sandbox: SandboxUpstream) -> None:
    schema = {"name": "trip", "strict": True, "schema": BookTrip.model_json_schema()}
    payload = {**chat("Book me Rome"), "tools": None, "response_format": {"type": "json_schema", "json_schema": schema}}
    answer = await completion(sandbox, payload)

    assert answer.choices[0].message.content is not None
    BookTrip.model_validate_json(answer.choices[0].message.content)


async def test_json_object_response_format_gives_a_json_object(sandbox: SandboxUpstream) -> None:
    payload = {**chat("Say hi"), "tools": None, "response_format": {"type": "json_object"}}
    answer = await completion(sandbox, payload)

    assert answer.choices[0].message.content is not None
    value = json.loads(answer.choices[0].message.content)
    assert isinstance(value, dict)
    assert value["reply"] == "Sandbox reply to: Say hi"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "number", "maximum": 0.25}, 0.25),
        ({"type": "integer", "minimum": 3, "multipleOf": 5}, 5),
        ({"type": ["null", "boolean"]}, False),
        ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, 1),
        ({"const": {"fixed": [1]}}, {"fixed": [1]}),
        ({"type": "string", "format": "date-time"}, "2025-01-01T00:00:00Z"),
        ({"type": "string", "maxLength": 3}, "san"),
        ({"type": "string", "minLength": 10}, "sandboxsan"),
        ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}]}, [1, False]),
        ({"type": "array", "items": {"type": "null"}, "minItems": 3}, [None, None, None]),
        ({"type": "array", "maxItems": 0}, []),
        ({"type": "object", "properties": {"a": {"type": "integer"}}}, {}),
        (
            {"allOf": [{"required": ["a"]}, {"required": ["b"], "properties": {"b": {"type": "integer"}}}]},
            {"a": "sandbox", "b": 1},
        ),
        ({"$ref": "#/$defs/n", "$defs": {"n": {"type": "number"}}}, 1.5),
    ],
)
def test_schema_values_meet_their_constraints(schema: dict[str, Any], expected: Any) -> None:
    assert value_for_schema(schema) == expected


def test_string_values_are_words_of_the_message() -> None:
    schema = {"type": "object", "properties": {}, "required": ["a", "b", "c"]}

    value = value_for_schema(schema, ["Lisbon", "Porto"])
    assert set(value.values()) <= {"Lisbon", "Porto"}
