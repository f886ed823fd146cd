"""A chat completion request as the proxy sees it: validated just enough to meter it, otherwise untouched.

Every field Wattfare does not meter passes through as the client sent it; only the fields that bound
cost (`max_tokens`/`max_completion_tokens`, `n`) and the few it needs (`model`, `messages`, `stream`,
`user`) are checked, each with a typed 400 naming the field. Everything that could fail once a hold is
taken is checked here, before it: nesting depth, fields named like credentials (never forwarded to a
provider), and the encoding of the body the upstream will get (`UpstreamBody`); the checks every proxy body
shares are `request_body`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from wattfare.metering import image_part_count, prompt_token_bound
from wattfare.server.errors import invalid
from wattfare.server.proxy.request_body import anonymous_user as anonymous_user  # where the benchmarks time it
from wattfare.server.proxy.request_body import encoded_body, json_object_body, model_field, user_field

MAX_CHOICES = 16
_MAX_TOKENS_CEILING = 10_000_000
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """The parsed body and what metering needs from it."""

    payload: dict[str, Any]
    model: str
    stream: bool
    choices: int
    requested_max_tokens: int | None
    max_tokens_field: str
    body_user: str | None
    prompt_token_bound: int
    images: int

    def sent(self) -> CompletionRequest:
        """This request without its body, once the upstream has it (what metering needs is kept)."""
        return replace(self, payload={})


def _positive_int(payload: dict[str, Any], name: str, ceiling: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
        raise invalid(f"'{name}' must be an integer between 1 and {ceiling}.", name)
    return value


def parse_completion(body: bytes) -> CompletionRequest:
    """Parse and check a `/chat/completions` body; raise `ApiError` (400) naming the bad field."""
    body_dict = json_object_body(body)
    model = model_field(body_dict)
    messages = body_dict.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required and must be a non-empty array.", "messages")
    for index, message in enumerate(messages):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):  # pyright: ignore[reportUnknownMemberType]
            raise invalid(f"messages[{index}] must be an object with a string 'role'.", f"messages[{index}]")
    stream = body_dict.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean.", "stream")
    for name, kind in (("tools", list), ("stream_options", dict), ("response_format", dict)):
        value = body_dict.get(name)
        if value is not None and not isinstance(value, kind):
            raise invalid(f"'{name}' must be {'an array' if kind is list else 'an object'}.", name)
    user = user_field(body_dict)
    max_tokens = _positive_int(body_dict, "max_tokens", _MAX_TOKENS_CEILING)
    max_completion = _positive_int(body_dict, "max_completion_tokens", _MAX_TOKENS_CEILING)
    choices = _positive_int(body_dict, "n", MAX_CHOICES) or 1
    limits = [v for v in (max_tokens, max_completion) if v is not None]
    extra = {k: body_dict[k] for k in ("response_format", "tool_choice", "functions") if k in body_dict}
    return CompletionRequest(
        payload=body_dict,
        model=model,
        stream=stream,
        choices=choices,
        requested_max_tokens=min(limits) if limits else None,
        max_tokens_field="max_completion_tokens" if max_completion is not None and max_tokens is None else "max_tokens",
        body_user=user,
        prompt_token_bound=prompt_token_bound(messages, body_dict.get("tools"), extra or None),  # pyright: ignore[reportUnknownArgumentType]
        images=image_part_count(messages),  # pyright: ignore[reportUnknownArgumentType]
    )


@dataclass(frozen=True, slots=True)
class UpstreamBody:
    """The body the upstream will get, encoded before the reserve so that encoding cannot fail after it.

    Everything but the `max_tokens` the hold decides is in `encoded`; `with_max_tokens` appends that one
    field to the bytes, so the body is encoded once per request, before any hold exists.
    """

    payload: dict[str, Any]
    encoded: bytes
    max_tokens_field: str

    def with_max_tokens(self, max_tokens: int | None) -> tuple[dict[str, Any], bytes]:
        """The payload and its bytes with the metered `max_tokens` (None: the client's choice, unchanged)."""
        if max_tokens is None:
            return self.payload, self.encoded
        payload = dict(self.payload)
        payload[self.max_tokens_field] = max_tokens
        # `encoded` is a non-empty JSON object (it has `model` and `messages`): the field goes before its `}`.
        field = b',"' + self.max_tokens_field.encode() + b'":' + str(max_tokens).encode() + b"}"
        return payload, self.encoded[:-1] + field


# What an exchange keeps of its upstream body once sent: nothing (see `MeteredExchange._answered`).
SENT_BODY = UpstreamBody(payload={}, encoded=b"{}", max_tokens_field="max_tokens")


def upstream_body(request: CompletionRequest, *, end_user: str) -> UpstreamBody:
    """The body to send upstream: the client's, with usage reporting and the anonymous user; 400 if unencodable.

    The client's `max_tokens` fields are left out here and set from the hold (`UpstreamBody.with_max_tokens`),
    which sets none only when output is free and the client asked for no limit.
    """
    payload = dict(request.payload)
    if request.stream:
        options: dict[str, Any] = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    payload["user"] = end_user
    if "safety_identifier" in payload:
        # OpenAI's newer per-user field: the provider sees the same opaque id, never the app's own.
        payload["safety_identifier"] = end_user
    for field in _MAX_TOKENS_FIELDS:
        payload.pop(field, None)
    encoded = encoded_body(payload)
    return UpstreamBody(payload=payload, encoded=encoded, max_tokens_field=request.max_tokens_field)
