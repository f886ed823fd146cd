"""A chat completion request as the proxy sees it: validated just enough to meter it, otherwise untouched.

Every field Wattfare does not meter passes through as the client sent it; only the fields that bound
cost (`max_tokens`/`max_completion_tokens`, `n`) and the few it needs (`model`, `messages`, `stream`,
`user`) are checked, each with a typed 400 naming the field. Everything that could fail once a hold is
taken is checked here, before it: nesting depth, fields named like credentials (never forwarded to a
provider), and the encoding of the body the upstream will get (`UpstreamBody`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from wattfare.metering import image_part_count, prompt_token_bound
from wattfare.server.errors import ApiError, invalid

MAX_USER_ID_LENGTH = 256
MAX_CHOICES = 16
# Deeper than any real request: OpenAI caps structured-output schemas at 10 levels of nesting, and a
# message with content parts and tool calls is 6 deep. The JSON encoder gives up at 255.
MAX_NESTING_DEPTH = 64
_MAX_TOKENS_CEILING = 10_000_000
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
# Top-level body fields whose name marks a credential: a provider must never receive one from Wattfare
# (an app's leftover `openai_api_key` would otherwise reach it in the body). Names are compared lower-case
# with `_`/`-` removed; "token" fields are credentials unless they count tokens (`max_tokens`).
_CREDENTIAL_MARKS = ("apikey", "secret", "password", "passwd", "authorization", "bearer", "credential", "privatekey")
_ACCESS_MARKS = ("accesskey", "token")


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


def _positive_int(payload: dict[str, Any], name: str, ceiling: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
        raise invalid(f"'{name}' must be an integer between 1 and {ceiling}.", name)
    return value


def credential_field(name: str) -> bool:
    """Whether a body field's name marks it as a credential (an API key, a password, an access token)."""
    folded = name.lower().replace("_", "").replace("-", "")
    if any(mark in folded for mark in _CREDENTIAL_MARKS):
        return True
    return "accesskey" in folded or ("token" in folded and not folded.endswith("tokens"))


def _nesting_depth_within(value: Any, limit: int) -> bool:
    """Whether `value` nests at most `limit` arrays/objects deep.

    Level by level, containers only (most of a body is strings), and without recursion: a hostile body
    cannot exhaust the stack. Untyped on purpose: this runs on every request, over every container.
    """
    level: list[Any] = [value]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:  # pyright: ignore[reportUnknownVariableType]
                if type(child) is dict or type(child) is list:  # pyright: ignore[reportUnknownArgumentType]
                    below.append(child)
        if not below:
            return True
        level = below
    return False


def parse_completion(body: bytes) -> CompletionRequest:
    """Parse and check a `/chat/completions` body; raise `ApiError` (400) naming the bad field."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.")
    body_dict: dict[str, Any] = payload  # pyright: ignore[reportUnknownVariableType]
    if not _nesting_depth_within(body_dict, MAX_NESTING_DEPTH):
        raise invalid(f"The request body nests deeper than {MAX_NESTING_DEPTH} levels of arrays and objects.")
    for name in body_dict:
        if credential_field(name):
            raise invalid(
                f"The body field {name!r} looks like a credential; Wattfare never forwards credentials to a model "
                "provider. Authenticate with the 'Authorization' header and remove this field.",
                name,
            )
    model = body_dict.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise invalid("'model' is required and must be a model id such as 'openai/gpt-4o-mini'.", "model")
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
    user = body_dict.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_ID_LENGTH):
        raise invalid(f"'user' must be a string of at most {MAX_USER_ID_LENGTH} characters.", "user")
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


def anonymous_user(app_id: str, app_user_id: str) -> str:
    """A stable id for the end user that reveals neither the app's id for them nor who they are."""
    return "wf_" + hashlib.sha256(f"{app_id}:{app_user_id}".encode()).hexdigest()[:32]


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
    try:
        encoded = orjson.dumps(payload)
    except orjson.JSONEncodeError as exc:
        raise invalid(f"The request body cannot be forwarded: {exc}.") from None
    return UpstreamBody(payload=payload, encoded=encoded, max_tokens_field=request.max_tokens_field)


def require_end_user(header_value: str | None, body_user: str | None) -> str:
    """The app user id from `Wattfare-User`, else the body's `user`; raise 400 when neither names one."""
    user = header_value if header_value else body_user
    if not user:
        raise ApiError(
            "invalid_request",
            "Name the end user with the 'Wattfare-User' header (or the 'user' field of the body).",
            param="user",
        )
    if len(user) > MAX_USER_ID_LENGTH or not user.isprintable():
        raise invalid(f"The end user id must be printable and at most {MAX_USER_ID_LENGTH} characters.", "user")
    return user
