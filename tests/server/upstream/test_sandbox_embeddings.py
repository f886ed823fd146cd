"""The sandbox's embeddings: deterministic vectors where similar texts are near, on OpenAI's wire."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
import pytest

from tests.server.upstream.exchange import chat_request
from wattfare.metering import embedding_token_bound
from wattfare.server.upstream.sandbox.embeddings import MAX_SANDBOX_FLOATS
from wattfare.server.upstream.sandbox.models import SandboxUpstream, load_bundled_embedding_models

pytestmark = pytest.mark.anyio
SMALL = "openai/text-embedding-3-small"


async def embed(sandbox: SandboxUpstream, **payload: Any) -> tuple[int, dict[str, Any]]:
    answer = await sandbox.embed(chat_request({"model": SMALL} | payload))
    assert answer.body is not None
    return answer.status, orjson.loads(answer.body)


def vectors(body: dict[str, Any]) -> list[list[float]]:
    return [item["embedding"] for item in body["data"]]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


async def test_the_answer_is_openais_embedding_list(sandbox: SandboxUpstream) -> None:
    status, body = await embed(sandbox, input=["alpha", "beta"])

    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == SMALL
    assert [(item["object"], item["index"]) for item in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}


async def test_the_same_text_always_gets_the_same_vector(sandbox: SandboxUpstream) -> None:
    first = await sandbox.embed(chat_request({"model": SMALL, "input": ["retrieval", "augmented"]}))
    again = await SandboxUpstream().embed(chat_request({"model": SMALL, "input": ["retrieval", "augmented"]}))

    assert first.body == again.body
    _, body = await embed(sandbox, input=["retrieval", "retrieval"])
    assert vectors(body)[0] == vectors(body)[1]


async def test_similar_texts_are_closer_than_unrelated_ones(sandbox: SandboxUpstream) -> None:
    _, body = await embed(
        sandbox,
        input=[
            "the cat sat on the mat",
            "a cat sat on a mat",
            "quarterly revenue grew by twelve percent",
            "The Cat Sat On The Mat",
        ],
    )
    cat, near, far, shouting = vectors(body)

    assert cosine(cat, near) > 0.5 > cosine(cat, far)
    assert cosine(cat, near) > cosine(near, far)
    assert cosine(cat, shouting) == pytest.approx(1.0)  # case is folded


async def test_vectors_are_unit_length_and_sized_per_model_or_as_asked(sandbox: SandboxUpstream) -> None:
    _, small = await embed(sandbox, input="hello")
    _, large = await embed(sandbox, input="hello", model="openai/text-embedding-3-large")
    _, asked = await embed(sandbox, input="hello", model="openai/text-embedding-3-large", dimensions=64)
    _, unknown = await embed(sandbox, input="hello", model="someone/else")

    assert [len(vectors(body)[0]) for body in (small, large, asked, unknown)] == [1536, 3072, 64, 1536]
    for body in (small, large, asked):
        assert math.hypot(*vectors(body)[0]) == pytest.approx(1.0, abs=1e-6)


async def test_base64_decodes_to_the_very_floats_of_the_float_answer(sandbox: SandboxUpstream) -> None:
    _, floats = await embed(sandbox, input=["base", "sixty four"], dimensions=32)
    _, encoded = await embed(sandbox, input=["base", "sixty four"], dimensions=32, encoding_format="base64")

    for index, item in enumerate(encoded["data"]):
        raw = base64.b64decode(item["embedding"])
        assert len(raw) == 32 * 4
        assert list(struct.unpack("<32f", raw)) == vectors(floats)[index]
    assert encoded["usage"] == floats["usage"]


@pytest.mark.parametrize(
    ("text_input", "tokens"),
    [("abcd", 1), ("abcde", 2), ("a", 1), ("日本語", 3), (["ab", "abcdefgh"], 3), ([5, 6, 7], 3), ([[1], [2, 3]], 3)],
)
async def test_usage_counts_a_quarter_of_the_bytes_and_token_arrays_exactly(
    sandbox: SandboxUpstream, text_input: object, tokens: int
) -> None:
    _, body = await embed(sandbox, input=text_input)

    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


async def test_usage_never_exceeds_the_proxys_bound(sandbox: SandboxUpstream) -> None:
    texts = ["x", "日本語のテキスト", "emoji 🎉🎉", "a longer sentence with several words in it"]
    _, body = await embed(sandbox, input=texts)

    assert body["usage"]["prompt_tokens"] <= embedding_token_bound(texts)


async def test_the_magic_marker_fails_like_a_provider(sandbox: SandboxUpstream) -> None:
    status, body = await embed(sandbox, input=["fine", "please [sandbox:upstream_error]"])

    assert status == 502
    assert body["error"]["metadata"]["error_type"] == "provider_unavailable"


async def test_more_floats_than_a_request_may_hold_are_refused_without_being_built(sandbox: SandboxUpstream) -> None:
    count = MAX_SANDBOX_FLOATS // 8192 + 1
    status, body = await embed(sandbox, input=["x"] * count, dimensions=8192)

    assert status == 400
    assert "exceed" in body["error"]["message"]


async def test_the_bundled_embedding_models_are_listed_as_embedding_models() -> None:
    listed = await SandboxUpstream().list_embedding_models()

    assert listed == load_bundled_embedding_models()
    assert {"openai/text-embedding-3-small", "openai/text-embedding-3-large", "openai/text-embedding-ada-002"} <= {
        model["id"] for model in listed
    }
    for model in listed:
        assert model["architecture"]["output_modalities"] == ["embeddings"]
        assert model["price_source"].startswith("openrouter.ai/")
