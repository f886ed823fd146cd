"""`embed` on both twins against the fake server: the wire body, the parsed result, errors and retries."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from typing import Any

import httpx
import pytest

import wattfare
from wattfare import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BudgetBusyError,
    BudgetExceededError,
    Embedding,
    EmbeddingResponse,
    FundingInvalidError,
    GrantInvalidError,
    NotConnectedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
    UsageError,
)

pytestmark = pytest.mark.anyio

EMBEDDINGS = "POST /api/v1/embeddings"
MODEL = "openai/text-embedding-3-small"


def sent_body(twin: Any) -> dict[str, Any]:
    return json.loads(twin.fake.last(EMBEDDINGS).content)


async def test_embed_names_the_user_in_a_header_and_returns_one_vector_per_input(twin: Any) -> None:
    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input=["one", "two"]))

    sent = twin.fake.last(EMBEDDINGS)
    assert sent.headers["wattfare-user"] == "alice"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {"model": MODEL, "input": ["one", "two"]}
    assert isinstance(result, EmbeddingResponse)
    assert [item.index for item in result.data] == [0, 1]
    assert all(isinstance(item, Embedding) for item in result.data)
    assert result.data[0].embedding == twin.fake.vector("one")
    assert result.data[1].embedding == twin.fake.vector("two")
    assert result.model == MODEL
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (6, 6)


async def test_embed_reports_the_cost_and_budget_left_as_decimals_with_the_request_id(twin: Any) -> None:
    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input="hello"))

    assert result.wattfare.cost_usd == Decimal("0.00000002")
    assert result.wattfare.remaining_usd == Decimal("9.99999998")
    assert result.wattfare.request_id == "req_emb"
    assert (result.wattfare.max_tokens, result.wattfare.clamped) == (None, None)


async def test_without_wattfare_headers_the_bodys_wattfare_block_is_read(twin: Any) -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5]}],
        "model": MODEL,
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
        "wattfare": {"costUsd": 0.0000001, "remainingUsd": 4.5, "requestId": "req_body"},
    }
    twin.fake.script(EMBEDDINGS, httpx.Response(200, json=body))

    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input="x"))

    assert result.wattfare.cost_usd == Decimal("0.0000001")
    assert result.wattfare.remaining_usd == Decimal("4.5")
    assert result.wattfare.request_id == "req_body"


@pytest.mark.parametrize(
    "given",
    [
        "one text",
        ["a", "b", "c"],
        [15339, 1917],
        [[15339, 1917], [9906]],
        ("a tuple", "of texts"),
    ],
    ids=["text", "texts", "tokens", "token-arrays", "tuple"],
)
async def test_each_of_openais_input_shapes_is_sent_as_given(twin: Any, given: Any) -> None:
    await twin.call(twin.client().user("alice").embed(model=MODEL, input=given))

    expected = given if isinstance(given, str) else [list(g) if isinstance(g, list) else g for g in given]
    assert sent_body(twin)["input"] == expected


async def test_dimensions_encoding_format_and_extra_body_are_sent(twin: Any) -> None:
    await twin.call(
        twin.client()
        .user("alice")
        .embed(model=MODEL, input=["x"], dimensions=8, encoding_format="float", extra_body={"provider": {"x": 1}})
    )

    assert sent_body(twin) == {
        "model": MODEL,
        "input": ["x"],
        "dimensions": 8,
        "encoding_format": "float",
        "provider": {"x": 1},
    }


async def test_base64_vectors_come_back_as_the_server_sent_them(twin: Any) -> None:
    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input=["x"], encoding_format="base64"))

    encoded = result.data[0].embedding
    assert isinstance(encoded, str)
    floats = list(struct.unpack("<3f", base64.b64decode(encoded)))
    assert floats == twin.fake.vector("x")


async def test_a_model_handle_embeds_with_its_model_for_its_user(twin: Any) -> None:
    handle = twin.client().user("bob").model(MODEL)

    result = await twin.call(handle.embed(["a"], dimensions=2))

    sent = twin.fake.last(EMBEDDINGS)
    assert sent.headers["wattfare-user"] == "bob"
    assert json.loads(sent.content) == {"model": MODEL, "input": ["a"], "dimensions": 2}
    assert len(result.data[0].embedding) == 2


async def test_unknown_fields_in_the_response_are_kept(twin: Any) -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [1.0], "extra": "kept"}],
        "model": MODEL,
        "usage": {"prompt_tokens": 1, "total_tokens": 1, "cost": 0.1},
        "provider": "sandbox",
    }
    twin.fake.script(EMBEDDINGS, httpx.Response(200, json=body))

    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input="x"))

    assert result.model_extra == {"provider": "sandbox"}
    assert result.data[0].model_extra == {"extra": "kept"}


async def test_a_body_that_is_not_an_embeddings_response_is_an_api_error(twin: Any) -> None:
    twin.fake.script(EMBEDDINGS, httpx.Response(200, json={"data": "nope"}, headers={"Wattfare-Request-Id": "r"}))

    with pytest.raises(APIError) as info:
        await twin.call(twin.client().user("alice").embed(model=MODEL, input="x"))

    assert type(info.value) is APIError
    assert "EmbeddingResponse" in str(info.value)
    assert info.value.request_id == "r"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"input": []}, "an empty list"),
        ({"input": None}, "NoneType"),
        ({"input": ["a", 1]}, "mixed"),
        ({"input": [True]}, "mixed"),
        ({"input": [[]]}, "mixed"),
        ({"input": b"bytes"}, "bytes"),
        ({"input": {"a": 1}}, "dict"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": True}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "extra_body": ["x"]}, "extra_body"),
        ({"input": "x", "model": ""}, "model"),
        ({"input": "x", "extra_body": {"n": float("nan")}}, "JSON"),
    ],
)
async def test_a_malformed_request_is_a_usage_error_before_anything_is_sent(
    twin: Any, arguments: dict[str, Any], says: str
) -> None:
    arguments = {"model": MODEL, **arguments}

    with pytest.raises(UsageError, match=says):
        await twin.call(twin.client().user("alice").embed(**arguments))

    assert twin.fake.requests == []


ERRORS = [
    (401, "auth", AuthenticationError),
    (402, "not_connected", NotConnectedError),
    (402, "budget_exceeded", BudgetExceededError),
    (402, "funding_invalid", FundingInvalidError),
    (402, "grant_invalid", GrantInvalidError),
    (400, "invalid_request", BadRequestError),
    (404, "model_not_found", NotFoundError),
    (429, "rate_limited", RateLimitError),
    (429, "budget_busy", BudgetBusyError),
    (502, "upstream", UpstreamError),
]


@pytest.mark.parametrize(("status", "code", "cls"), ERRORS)
async def test_every_error_response_raises_the_same_typed_exception_as_chat(
    twin: Any, status: int, code: str, cls: type[APIStatusError]
) -> None:
    twin.fake.script(EMBEDDINGS, *[twin.fake.error(status, code, "Spelled out.", param="model")] * 3)

    with pytest.raises(cls) as info:
        await twin.call(twin.client().user("alice").embed(model=MODEL, input="x"))

    assert (info.value.status_code, info.value.code, info.value.message) == (status, code, "Spelled out.")
    assert info.value.request_id == "req_err"


@pytest.mark.parametrize("code", ["not_connected", "budget_exceeded", "funding_invalid", "grant_invalid"])
async def test_a_402_on_embeddings_is_never_retried(twin: Any, code: str) -> None:
    twin.fake.script(EMBEDDINGS, twin.fake.error(402, code), twin.fake.error(402, code))

    with pytest.raises(wattfare.PaymentRequiredError):
        await twin.call(twin.client(max_retries=5).user("alice").embed(model=MODEL, input="x"))

    assert twin.fake.calls(EMBEDDINGS) == 1
    assert twin.sleeps == []


async def test_a_busy_budget_on_embeddings_is_retried_after_its_retry_after(twin: Any) -> None:
    busy = twin.fake.error(429, "budget_busy", headers={"Retry-After": "1"})
    twin.fake.script(EMBEDDINGS, busy)

    result = await twin.call(twin.client().user("alice").embed(model=MODEL, input="x"))

    assert result.data[0].embedding == twin.fake.vector("x")
    assert twin.fake.calls(EMBEDDINGS) == 2
    assert twin.sleeps == [1.0]


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_vectors_are_floats_in_input_order_whatever_the_encoding(twin: Any, encoding_format: str) -> None:
    reversed_order = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": twin.fake.vector("b")},
            {"object": "embedding", "index": 0, "embedding": twin.fake.vector("a")},
        ],
        "model": MODEL,
    }
    if encoding_format == "float":
        twin.fake.script(EMBEDDINGS, httpx.Response(200, json=reversed_order))

    result = await twin.call(
        twin.client().user("alice").embed(model=MODEL, input=["a", "b"], encoding_format=encoding_format)
    )

    first, second = result.vectors()
    assert first == twin.fake.vector("a")  # exact: these floats survive float32
    assert second == twin.fake.vector("b")
    assert all(isinstance(value, float) for value in first + second)


async def test_usage_rows_say_which_endpoint_and_an_older_servers_say_nothing(twin: Any) -> None:
    rows = [
        {"appUserId": "alice", "model": MODEL, "endpoint": "embeddings", "requests": 2, "promptTokens": 9},
        {"appUserId": "alice", "model": "openai/gpt-4o-mini", "requests": 1, "promptTokens": 9},
    ]
    for row in rows:
        row |= {"completionTokens": 0, "costUsd": 0.000001}
    twin.fake.script(
        "GET /api/v1/usage", httpx.Response(200, json={"from": "2026-11-01", "to": "2026-11-30", "data": rows})
    )

    report = await twin.call(twin.client().usage("alice"))

    assert [row.endpoint for row in report.data] == ["embeddings", None]
