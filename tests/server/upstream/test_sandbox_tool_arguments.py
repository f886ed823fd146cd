"""The sandbox fills tool arguments from the user's message, the way a model would, and keeps them valid."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, Field

from tests.server.upstream.exchange import chat_request, read_all
from wattfare.server.upstream.sandbox.cues import Cues
from wattfare.server.upstream.sandbox.models import SandboxUpstream
from wattfare.server.upstream.sandbox.schema import value_for_schema

pytestmark = pytest.mark.anyio


def function(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def obj(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


MULTIPLY = function("multiply", obj(a={"type": "integer"}, b={"type": "integer"}))
GET_WEATHER = function("get_weather", obj(city={"type": "string"}))


async def arguments(sandbox: SandboxUpstream, text: str, *tools: dict[str, Any]) -> list[dict[str, Any]]:
    """The arguments of every call the sandbox makes for `text`, parsed."""
    payload = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": text}], "tools": list(tools)}
    response = await sandbox.send(chat_request(payload))
    answer = ChatCompletion.model_validate_json(await read_all(response))
    calls = answer.choices[0].message.tool_calls or []
    return [json.loads(call.function.arguments) for call in calls if call.type == "function"]


async def test_integer_arguments_are_the_numbers_of_the_question_in_order(sandbox: SandboxUpstream) -> None:
    assert await arguments(sandbox, "What is 6 times 7?", MULTIPLY) == [{"a": 6, "b": 7}]


async def test_a_city_argument_is_the_place_named_in_the_question(sandbox: SandboxUpstream) -> None:
    assert await arguments(sandbox, "What's the weather in Paris?", GET_WEATHER) == [{"city": "Paris"}]


class Room(BaseModel):
    view: Literal["garden", "sea", "city"]
    smoking: bool


class Stay(BaseModel):
    nights: int = Field(gt=0)
    guests: int = Field(ge=1, le=4)


class Booking(BaseModel):
    """Pydantic validates what the sandbox built, independently of how the sandbox reads the schema."""

    city: str
    stay: Stay
    rooms: list[Room] = Field(min_length=1)
    budget: float = Field(ge=50, le=500)
    refundable: bool
    note: str = Field(min_length=3, max_length=12)


BOOK = function("book", Booking.model_json_schema())
BOOKING_QUESTION = "Book a refundable room in New York for 3 nights, 6 guests, sea view, budget 9999."


async def test_arguments_for_a_nested_schema_are_valid_and_come_from_the_question(sandbox: SandboxUpstream) -> None:
    [built] = await arguments(sandbox, BOOKING_QUESTION, BOOK)

    booking = Booking.model_validate(built)
    assert booking.city == "New York"
    assert (booking.stay.nights, booking.stay.guests, booking.budget) == (3, 4, 500)  # 6 and 9999 kept in bounds
    assert [(room.view, room.smoking) for room in booking.rooms] == [("sea", False)]  # the view asked for
    assert booking.refundable is True  # the question names it
    assert booking.note in BOOKING_QUESTION


async def test_the_same_request_gets_the_same_arguments(sandbox: SandboxUpstream) -> None:
    first = await arguments(sandbox, BOOKING_QUESTION, BOOK)

    assert first == await arguments(sandbox, BOOKING_QUESTION, BOOK)
    assert first == await arguments(SandboxUpstream(), BOOKING_QUESTION, BOOK)


async def test_numbers_past_the_questions_fall_back_to_defaults_within_bounds(sandbox: SandboxUpstream) -> None:
    tool = function("scale", obj(factor={"type": "number"}, times={"type": "integer", "minimum": 5}))

    assert await arguments(sandbox, "Scale by 2.5", tool) == [{"factor": 2.5, "times": 5}]


async def test_an_integer_argument_rounds_a_decimal_from_the_question(sandbox: SandboxUpstream) -> None:
    assert await arguments(sandbox, "What is 2.6 times 4?", MULTIPLY) == [{"a": 3, "b": 4}]


async def test_an_enum_argument_is_the_value_mentioned_else_the_first(sandbox: SandboxUpstream) -> None:
    unit = {"type": "string", "enum": ["celsius", "fahrenheit"]}
    tool = function("get_weather", obj(city={"type": "string"}, unit=unit))

    assert await arguments(sandbox, "Weather in Oslo in Fahrenheit?", tool) == [{"city": "Oslo", "unit": "fahrenheit"}]
    assert await arguments(sandbox, "Weather in Oslo?", tool) == [{"city": "Oslo", "unit": "celsius"}]


async def test_a_boolean_is_true_only_when_the_question_names_it(sandbox: SandboxUpstream) -> None:
    tool = function("get_weather", obj(city={"type": "string"}, include_forecast={"type": "boolean"}))

    named = await arguments(sandbox, "Weather in Rome, and include the forecast", tool)
    assert named == [{"city": "Rome", "include_forecast": True}]
    assert await arguments(sandbox, "Weather in Rome", tool) == [{"city": "Rome", "include_forecast": False}]


async def test_several_string_arguments_take_the_candidates_in_turn(sandbox: SandboxUpstream) -> None:
    tool = function("get_weather", obj(city={"type": "string"}, country={"type": "string"}))

    assert await arguments(sandbox, "Is it raining in Paris, France?", tool) == [{"city": "Paris", "country": "France"}]


async def test_quoted_unicode_text_is_kept_whole(sandbox: SandboxUpstream) -> None:
    tool = function("create_customer", obj(customer_name={"type": "string"}, description={"type": "string"}))

    [built] = await arguments(sandbox, "Create a customer named '你好啊集团' (Hello Group) - a Chinese company", tool)
    assert built == {"customer_name": "你好啊集团", "description": "Hello Group"}


async def test_langchains_magic_function_gets_the_3_named_in_prose(sandbox: SandboxUpstream) -> None:
    # langchain-tests' test_tool_calling asks exactly this and wants {"input": 3}.
    tool = function(
        "magic_function", obj(input={"type": "integer", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000})
    )

    assert await arguments(sandbox, "What is the value of magic_function(3)? Use the tool.", tool) == [{"input": 3}]


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("What is 6 times 7?", (6, 7)),
        ("Pay $1,250.50 or -3 by 12:30", (1250.5, -3, 12, 30)),
        ("Compare gpt-4o and o3 with gpt-4", ()),  # digits inside names are not numbers
        ("The id 12345678901234567890 is too long to be a number", ()),
        ("Ends with 7.", (7,)),
    ],
)
def test_the_numbers_of_a_prompt_are_read_in_order(text: str, numbers: tuple[float, ...]) -> None:
    assert Cues.read(text).numbers == numbers


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("What's the weather in Paris?", "Paris"),
        ("Rome or Paris?", "Paris"),  # a sentence's first word is no name
        ("Fly me to New York tomorrow", "New York"),
        ('Search for "red shoes" in Milan', "red shoes"),
        ("Tell me about Paris's museums", "Paris"),
        ("Use get_weather", "Use"),
        ("", None),
    ],
)
def test_the_best_string_of_a_prompt_is_a_quote_then_a_name_then_a_word(text: str, first: str | None) -> None:
    assert next(iter(Cues.read(text).strings), None) == first


def test_without_cues_a_string_is_sandbox_and_a_boolean_false() -> None:
    assert value_for_schema(obj(name={"type": "string"}, flag={"type": "boolean"}), Cues.read("")) == {
        "name": "sandbox",
        "flag": False,
    }
