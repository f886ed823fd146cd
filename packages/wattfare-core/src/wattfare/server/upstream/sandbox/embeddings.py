"""The sandbox's embeddings: offline, deterministic vectors on the OpenAI Embeddings wire.

Each input becomes a bag of hashed character 3-grams (token 3-grams for token-array inputs), folded into a vector of
the requested size (feature hashing: a gram adds +1 or -1 at the index its BLAKE2 digest picks) and L2-normalised.
The same text always gives the same vector, and texts that share many 3-grams point the same way, so cosine
similarity ranks "the cat sat on the mat" nearer "a cat sat on a mat" than "quarterly revenue grew": enough for
an app's retrieval code to be tested in CI, with no model at all.

What it honours: `dimensions` (default per model: 3072 for text-embedding-3-large and Gemini, 1024 for Perplexity's
0.6B, else 1536), and `encoding_format: "base64"` (the vector's little-endian float32 bytes, as OpenAI sends them; the
float answer carries those same float32 values). Usage: `prompt_tokens` = `total_tokens` = ceil(UTF-8 bytes / 4) per
string input (at least 1, never above its bytes) plus the length of each token array. A string input holding
`[sandbox:upstream_error]` gets the same 502 as a chat completion's.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson

from wattfare.server.upstream.base import UpstreamResponse

__all__ = ["DEFAULT_DIMENSIONS", "MAX_SANDBOX_FLOATS", "embedding_answer", "embedding_vector"]

DEFAULT_DIMENSIONS = 1536
_MODEL_DIMENSIONS = {
    "openai/text-embedding-3-large": 3072,
    "google/gemini-embedding-2-preview": 3072,
    "perplexity/pplx-embed-v1-0.6b": 1024,
}
# A batch of 2,048 inputs at 3,072 dimensions: what the largest OpenAI answer holds. Larger asks are refused (400),
# as a provider refuses what it cannot serve, so a test-mode request cannot make the sandbox build gigabytes.
MAX_SANDBOX_FLOATS = 2048 * 3072
_GRAM = 3
_JSON = {"content-type": "application/json"}
_UPSTREAM_ERROR = "[sandbox:upstream_error]"


def embedding_vector(item: str | Sequence[int], dimensions: int) -> list[float]:
    """The sandbox's unit vector for one input: hashed 3-grams, L2-normalised, as float32 values.

    Args:
        item: A text, or an array of token ids.
        dimensions: The vector's length (at least 1).

    Returns:
        `dimensions` floats, each exactly a float32, whose squares sum to 1 (up to float32 rounding).
    """
    vector = [0.0] * dimensions
    for gram in _grams(item):
        digest = int.from_bytes(hashlib.blake2b(gram, digest_size=8).digest(), "little")
        vector[digest % dimensions] += 1.0 if (digest >> 63) & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        # Grams that cancel out exactly: any fixed unit vector keeps the answer deterministic and normalised.
        vector[0], norm = 1.0, 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in vector))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _grams(item: str | Sequence[int]) -> list[bytes]:
    """The input's overlapping 3-grams (the whole input when it is shorter), as bytes to hash."""
    if isinstance(item, str):
        # Spaces around the text let a word's first and last letters form grams of their own.
        text = f" {item.casefold()} "
        starts = range(max(1, len(text) - _GRAM + 1))
        return [text[i : i + _GRAM].encode("utf-8", "surrogatepass") for i in starts]
    tokens = list(item)
    starts = range(max(1, len(tokens) - _GRAM + 1))
    return [b"#" + ",".join(str(token) for token in tokens[i : i + _GRAM]).encode() for i in starts]


def _tokens(item: str | Sequence[int]) -> int:
    if isinstance(item, str):
        size = len(item.encode("utf-8", "surrogatepass"))
        return min(size, max(1, math.ceil(size / 4)))
    return len(item)


def _inputs(value: object) -> list[str | Sequence[int]]:
    """The request's inputs, one per entry (the proxy has checked their shape; anything else embeds as text)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        items = cast("list[object]", value)
        if items and all(isinstance(item, int) for item in items):
            return [cast("list[int]", items)]
        return [item if isinstance(item, str) else cast("list[int]", item) for item in items]
    return [str(value)]


def _refusal(status: int, message: str, error_type: str) -> UpstreamResponse:
    error = {"code": status, "message": message, "metadata": {"error_type": error_type, "provider_name": "sandbox"}}
    return UpstreamResponse(status=status, headers=dict(_JSON), body=orjson.dumps({"error": error}))


def embedding_answer(payload: Mapping[str, Any]) -> UpstreamResponse:
    """Answer one embedding request (see the module docstring)."""
    model = str(payload.get("model") or "sandbox")
    inputs = _inputs(payload.get("input"))
    if any(isinstance(item, str) and _UPSTREAM_ERROR in item for item in inputs):
        return _refusal(502, "Sandbox: the provider is unavailable ([sandbox:upstream_error]).", "provider_unavailable")
    requested = payload.get("dimensions")
    dimensions = requested if isinstance(requested, int) and requested > 0 else _MODEL_DIMENSIONS.get(model)
    dimensions = dimensions or DEFAULT_DIMENSIONS
    if dimensions * len(inputs) > MAX_SANDBOX_FLOATS:
        return _refusal(
            400,
            f"Sandbox: {len(inputs)} inputs of {dimensions} dimensions exceed what it builds "
            f"({MAX_SANDBOX_FLOATS} floats per request).",
            "invalid_request",
        )
    as_base64 = payload.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(item, dimensions)
        encoded: object = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_tokens(item) for item in inputs)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return UpstreamResponse(status=200, headers=dict(_JSON), body=orjson.dumps(body))
