"""An embedding request as the proxy sees it: OpenAI's shape, checked just enough to meter it, otherwise untouched.

`{model, input, dimensions?, encoding_format?, user?}`, where `input` is a string, an array of strings, an array
of token ids, or an array of token-id arrays (OpenAI's four forms). What bounds the cost (`input`) and what the
proxy needs (`model`, `user`) are checked, each refusal a typed 400 naming the field; `dimensions` and
`encoding_format` are checked for type and range and passed through, as is every other field (a provider's own
`input_type`, say). Limits, as OpenAI's: at most `MAX_INPUTS` inputs, none empty; token ids are integers from 0
to `MAX_TOKEN_ID`. The body the upstream gets is encoded here, before any hold exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from wattfare.metering import embedding_token_bound
from wattfare.server.errors import invalid
from wattfare.server.proxy.request_body import encoded_body, json_object_body, model_field, user_field

MAX_INPUTS = 2048
MAX_DIMENSIONS = 8192  # twice the widest embedding model served (4,096); providers refuse more than theirs anyway
MAX_TOKEN_ID = 2**31 - 1
ENCODING_FORMATS = ("float", "base64")
_INPUT_FORMS = "a string, an array of strings, an array of token ids, or an array of token-id arrays"


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """The parsed body and what metering needs from it."""

    payload: dict[str, Any]
    model: str
    body_user: str | None
    inputs: int
    input_token_bound: int


def _token_array(value: list[Any], param: str) -> list[int]:
    if not value:
        raise invalid(f"'{param}' must not be an empty array of tokens.", param)
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token <= MAX_TOKEN_ID:
            raise invalid(f"'{param}' must hold token ids: integers from 0 to {MAX_TOKEN_ID}.", param)
    return cast("list[int]", value)


def _inputs(value: object) -> list[str | list[int]]:
    """The inputs, one entry per vector the answer will hold; 400 naming the first bad one."""
    if isinstance(value, str):
        if not value:
            raise invalid("'input' must not be an empty string.", "input")
        return [value]
    if not isinstance(value, list):
        raise invalid(f"'input' is required and must be {_INPUT_FORMS}.", "input")
    items = cast("list[Any]", value)
    if not items:
        raise invalid("'input' must not be an empty array.", "input")
    if len(items) > MAX_INPUTS:
        raise invalid(f"'input' holds {len(items)} inputs; at most {MAX_INPUTS} are allowed per request.", "input")
    if isinstance(items[0], int) and not isinstance(items[0], bool):
        return [_token_array(items, "input")]
    inputs: list[str | list[int]] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        if isinstance(item, str):
            if not item:
                raise invalid(f"'{param}' must not be an empty string.", param)
            inputs.append(item)
        elif isinstance(item, list):
            inputs.append(_token_array(cast("list[Any]", item), param))
        else:
            raise invalid(f"'{param}' must be a string or an array of token ids ('input': {_INPUT_FORMS}).", param)
    kinds = {type(item) for item in inputs}
    if len(kinds) > 1:
        raise invalid("'input' must not mix strings and token arrays.", "input")
    return inputs


def parse_embedding(body: bytes) -> EmbeddingRequest:
    """Parse and check an `/embeddings` body; raise `ApiError` (400) naming the bad field."""
    payload = json_object_body(body)
    model = model_field(payload, example="openai/text-embedding-3-small")
    inputs = _inputs(payload.get("input"))
    dimensions = payload.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise invalid(f"'dimensions' must be an integer between 1 and {MAX_DIMENSIONS}.", "dimensions")
    encoding = payload.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        raise invalid('\'encoding_format\' must be "float" or "base64".', "encoding_format")
    user = user_field(payload)
    return EmbeddingRequest(
        payload=payload,
        model=model,
        body_user=user,
        inputs=len(inputs),
        input_token_bound=embedding_token_bound(inputs),
    )


def upstream_embedding_body(request: EmbeddingRequest, *, end_user: str) -> tuple[dict[str, Any], bytes]:
    """The body to send upstream, and its bytes: the client's, naming the end user only by `end_user`."""
    payload = dict(request.payload)
    payload["user"] = end_user
    return payload, encoded_body(payload)
