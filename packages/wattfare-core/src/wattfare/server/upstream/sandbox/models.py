"""The sandbox upstream: offline, deterministic, in-process answers on the real OpenAI wire.

It exists so developers can run their apps' AI paths in CI for free, the way a payment provider's test
mode works: any model name is answered (the proxy has already refused unpriced models), priced by the
proxy at that model's real price, so caps behave as in production.

What it answers:
- Text: "Sandbox reply to: <first 60 characters of the last user message>" and deterministic filler
  words (seeded by the messages, `seed` and the choice index), cut at `max_completion_tokens` /
  `max_tokens` (finish_reason "length") or at the first `stop` sequence (not included). `n` > 1 gives
  n choices. A sandbox token is a whitespace-delimited word with its trailing whitespace.
- Tool calls: when `tools` are given, `tool_choice` is not "none" and the last message is the user's.
  The tool forced by `tool_choice`, else every tool the user's text names (only the first when
  `parallel_tool_calls` is false), else the first tool. Arguments are valid for the tool's JSON schema
  and filled from the last user message as a model would: "What is 6 times 7?" gives `{"a": 6, "b": 7}`
  and "What's the weather in Paris?" gives `{"city": "Paris"}` (see `schema.py` and `cues.py`).
  After a `tool` message it answers in text, quoting the tool result.
- `response_format`: JSON text, valid for the given `json_schema`, or an object for `json_object`.
- Usage: `prompt_tokens` = ceil(UTF-8 bytes / 4) + 3 per message, never above the byte length;
  `completion_tokens` = tokens emitted (tool arguments count one per 4 characters). No `usage.cost`:
  the proxy prices tokens itself. Streams carry usage only with `stream_options.include_usage`.
- Embeddings (`embed`): deterministic vectors of hashed 3-grams, so similar texts are near each other
  (`embeddings.py`); `dimensions` and `encoding_format` honoured.

Magic markers, for testing an app's failure paths (like a payment provider's test cards), put in the
last user message:
- `[sandbox:upstream_error]`: HTTP 502 with an OpenRouter error body (`error_type` "provider_unavailable").
- `[sandbox:midstream_error]`: a stream sends 3 tokens, then a chunk with a top-level `error` and
  `finish_reason` "error", and ends without `[DONE]`, as OpenRouter does; without streaming, a 200 body
  carrying the same `error` and the partial content.
- `[sandbox:slow]`: 50 ms between streamed chunks.
- `[sandbox:long]`: a long answer, up to `max_tokens` (4096 without it), to hit caps mid-stream.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from itertools import islice
from typing import Any, cast

import orjson

from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse
from wattfare.server.upstream.sandbox.content import (
    ARGUMENT_CHARS_PER_TOKEN,
    Answer,
    Choice,
    plan_answer,
)
from wattfare.server.upstream.sandbox.embeddings import embedding_answer

__all__ = ["SandboxUpstream", "load_bundled_embedding_models", "load_bundled_models"]

_SNAPSHOT = "models_snapshot.json"
_EMBEDDING_SNAPSHOT = "embedding_models.json"
_FINGERPRINT = "sandbox"
_SLOW_DELAY = 0.05
_TOKENS_BEFORE_MIDSTREAM_ERROR = 3
_JSON = {"content-type": "application/json"}
_EVENT_STREAM = {"content-type": "text/event-stream"}
_DONE = b"data: [DONE]\n\n"


def load_bundled_models() -> list[dict[str, Any]]:
    """The bundled price snapshot's models, in OpenRouter's `/models` format (string USD per token)."""
    raw = resources.files("wattfare.server.billing.data").joinpath(_SNAPSHOT).read_bytes()
    return cast(list[dict[str, Any]], orjson.loads(raw)["data"])


def load_bundled_embedding_models() -> list[dict[str, Any]]:
    """The bundled embedding models, in OpenRouter's `/embeddings/models` format (string USD per input token)."""
    raw = resources.files("wattfare.server.billing.data").joinpath(_EMBEDDING_SNAPSHOT).read_bytes()
    return cast(list[dict[str, Any]], orjson.loads(raw)["data"])


class SandboxUpstream:
    """A built-in upstream that answers every chat completion deterministically, without network.

    Args:
        models: the model list `list_models` returns; the bundled price snapshot when None.
        clock: returns the current time (tz-aware UTC); read once per request for `created`, so tests
            that inject a fixed clock get byte-identical answers.
        embedding_models: the list `list_embedding_models` returns; the bundled embedding models when None.
    """

    name = "sandbox"

    def __init__(
        self,
        models: list[dict[str, Any]] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        embedding_models: list[dict[str, Any]] | None = None,
    ) -> None:
        self._models = load_bundled_models() if models is None else list(models)
        self._embedding_models = load_bundled_embedding_models() if embedding_models is None else list(embedding_models)
        self._clock = clock or _utc_now

    async def list_models(self) -> list[dict[str, Any]]:
        """Return the configured models (the bundled snapshot by default)."""
        return list(self._models)

    async def list_embedding_models(self) -> list[dict[str, Any]]:
        """Return the configured embedding models (the bundled ones by default)."""
        return list(self._embedding_models)

    async def embed(self, request: UpstreamRequest) -> UpstreamResponse:
        """Answer one embedding request with deterministic vectors (see `embeddings`)."""
        # A large batch is a few hundred milliseconds of hashing: off the event loop, so streams keep flowing.
        return await asyncio.to_thread(embedding_answer, request.payload)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Answer one chat completion, whole or as a stream of server-sent events."""
        payload = request.payload
        answer = plan_answer(payload)
        if "upstream_error" in answer.magic:
            error = _error("Sandbox: the provider is unavailable ([sandbox:upstream_error]).")
            return UpstreamResponse(status=502, headers=dict(_JSON), body=orjson.dumps({"error": error}))
        wire = _Wire(request, answer, int(self._clock().timestamp()))
        if request.stream:
            return UpstreamResponse(status=200, headers=dict(_EVENT_STREAM), chunks=wire.events())
        return UpstreamResponse(status=200, headers=dict(_JSON), body=wire.body())

    async def aclose(self) -> None:
        """Nothing to release: the sandbox holds no connections."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _error(message: str) -> dict[str, Any]:
    return {
        "code": 502,
        "message": message,
        "metadata": {"error_type": "provider_unavailable", "provider_name": "sandbox"},
    }


class _Wire:
    """One answer encoded as OpenAI Chat Completions JSON or server-sent events."""

    def __init__(self, request: UpstreamRequest, answer: Answer, created: int) -> None:
        payload = request.payload
        identity = request.body or orjson.dumps(dict(payload), default=str, option=orjson.OPT_SORT_KEYS)
        self._answer = answer
        self._head: dict[str, Any] = {
            "id": "chatcmpl-sbx-" + hashlib.sha256(identity).hexdigest()[:24],
            "object": "chat.completion",
            "created": created,
            "model": str(payload.get("model") or "sandbox"),
            "system_fingerprint": _FINGERPRINT,
        }
        options = payload.get("stream_options")
        self._include_usage = isinstance(options, Mapping) and _include_usage(cast(Mapping[str, Any], options))

    def usage(self) -> dict[str, int]:
        prompt, completion = self._answer.prompt_tokens, self._answer.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def body(self) -> bytes:
        if "midstream_error" in self._answer.magic:
            partial = "".join(self._answer.choices[0].tokens[:_TOKENS_BEFORE_MIDSTREAM_ERROR])
            message = {"role": "assistant", "content": partial, "refusal": None}
            return orjson.dumps(
                {
                    **self._head,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "error"}],
                    "error": _error("Sandbox: the provider failed mid-answer ([sandbox:midstream_error])."),
                }
            )
        choices = [
            {"index": index, "message": _message(choice), "logprobs": None, "finish_reason": choice.finish_reason}
            for index, choice in enumerate(self._answer.choices)
        ]
        return orjson.dumps({**self._head, "choices": choices, "usage": self.usage()})

    async def events(self) -> AsyncIterator[bytes]:
        magic = self._answer.magic
        slow, failing = "slow" in magic, "midstream_error" in magic
        pending = ((index, delta) for index, choice in enumerate(self._answer.choices) for delta in _deltas(choice))
        if failing:
            pending = islice(pending, _TOKENS_BEFORE_MIDSTREAM_ERROR)
        for sent, (index, delta) in enumerate(pending):
            if slow and sent:
                await asyncio.sleep(_SLOW_DELAY)
            yield self._event([_choice_delta(index, delta, None)])
        if failing:
            # OpenRouter's mid-stream failure: a chunk with a top-level error, then the stream ends.
            error = _error("Sandbox: the provider failed mid-stream ([sandbox:midstream_error]).")
            yield self._event([_choice_delta(0, {"content": ""}, "error")], error=error)
            return
        for index, choice in enumerate(self._answer.choices):
            if slow:
                await asyncio.sleep(_SLOW_DELAY)
            yield self._event([_choice_delta(index, {}, choice.finish_reason)])
        if self._include_usage:
            yield self._event([], usage=self.usage())
        yield _DONE

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self._head, "object": "chat.completion.chunk", "choices": choices}
        if self._include_usage:
            # OpenAI sends `"usage": null` on every chunk but the last when usage is requested.
            chunk["usage"] = None
        chunk.update(extra)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _include_usage(options: Mapping[str, Any]) -> bool:
    return options.get("include_usage") is True


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if choice.tool_calls else choice.content}
    message["refusal"] = None
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in choice.tool_calls
        ]
    return message


def _choice_delta(index: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _deltas(choice: Choice) -> list[dict[str, Any]]:
    """The streamed deltas of one choice: one per token, the first one carrying the role."""
    deltas: list[dict[str, Any]] = [{"content": token} for token in choice.tokens]
    for position, call in enumerate(choice.tool_calls):
        header = {
            "index": position,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append({"content": None, "tool_calls": [header]} if position == 0 else {"tool_calls": [header]})
        for start in range(0, len(call.arguments), ARGUMENT_CHARS_PER_TOKEN):
            fragment = call.arguments[start : start + ARGUMENT_CHARS_PER_TOKEN]
            deltas.append({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]})
    if not deltas:
        deltas.append({"content": ""})
    deltas[0] = {"role": "assistant", **deltas[0]}
    return deltas
