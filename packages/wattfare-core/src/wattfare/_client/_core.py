"""The I/O-free half of the client, shared by `Wattfare` and `AsyncWattfare`.

Configuration, request building and response parsing live here (the retry policy in `_retries`); the twins
only send, sleep and stream. Nothing here touches the network, the clock or randomness: the twins
pass `now` and `jitter` in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from wattfare._exceptions import (
    APIError,
    UsageError,
)
from wattfare._key_shape import key_shape_problem
from wattfare._types import ChatCompletion, EmbeddingResponse, ModelInfo, ModelList, WattfareInfo
from wattfare._version import __version__

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8787"
API_PREFIX: Final = "/api/v1"
SECRET_KEY_ENV: Final = "WATTFARE_SECRET_KEY"  # noqa: S105  (a variable name, not a secret)
BASE_URL_ENV: Final = "WATTFARE_BASE_URL"
USER_AGENT: Final = f"wattfare-python/{__version__}"

MessageParam = Mapping[str, Any] | BaseModel
"""A chat message: an OpenAI message dict, or a message model from a previous completion."""

EmbeddingInput = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]
"""What an embeddings request embeds, as on OpenAI's wire: a text, texts, a token array, or token arrays."""

EncodingFormat = Literal["float", "base64"]
"""How the server sends each vector: floats, or base64 of little-endian float32 bytes."""

_M = TypeVar("_M", bound=BaseModel)


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A client's resolved settings."""

    secret_key: str = field(repr=False)
    api_url: str
    timeout: httpx.Timeout
    max_retries: int
    busy_retries: int | None = None


def resolve_config(
    secret_key: str | None,
    base_url: str | None,
    *,
    timeout: float | httpx.Timeout,
    max_retries: int,
    busy_retries: int | None = None,
    environ: Mapping[str, str],
) -> ClientConfig:
    """Validate the constructor's arguments, falling back to `WATTFARE_SECRET_KEY` / `WATTFARE_BASE_URL`."""
    return ClientConfig(
        secret_key=resolve_secret_key(secret_key, environ),
        api_url=resolve_api_url(base_url, environ),
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        max_retries=_retry_count("max_retries", max_retries),
        busy_retries=None if busy_retries is None else _retry_count("busy_retries", busy_retries),
    )


def resolve_secret_key(secret_key: str | None, environ: Mapping[str, str]) -> str:
    """The app's secret key: `secret_key`, else `WATTFARE_SECRET_KEY`; `UsageError` when missing or not one."""
    key = (secret_key if secret_key is not None else environ.get(SECRET_KEY_ENV, "")).strip()
    if not key:
        raise UsageError(f"no secret key: pass secret_key=... or set {SECRET_KEY_ENV}")
    if not key.startswith("sk_"):
        hint = " (that is a publishable key, for the browser)" if key.startswith("pk_") else ""
        raise UsageError(f"the secret key must start with 'sk_'{hint}")
    problem = key_shape_problem(key)
    if problem is not None:
        raise UsageError(problem)
    return key


def resolve_api_url(base_url: str | None, environ: Mapping[str, str]) -> str:
    """The API root (`…/api/v1`) of `base_url`, else `WATTFARE_BASE_URL`, else the dev server."""
    root = (base_url or environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
    try:
        url = httpx.URL(root)
    except httpx.InvalidURL as exc:
        raise UsageError(f"invalid base_url {root!r}: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {root!r}")
    # Accept the API root too (what an OpenAI client is given), without doubling the prefix.
    return root if root.endswith(API_PREFIX) else root + API_PREFIX


def _retry_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be an int >= 0, got {value!r}")
    return value


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One API call, before it meets a transport.

    Attributes:
        method: The HTTP method.
        path: The path under `/api/v1`, already percent-encoded.
        params: Query parameters.
        body: The JSON body, encoded.
        app_user_id: The end user a completion is charged to (sent as `Wattfare-User`).
        stream: Whether the response is an SSE stream (read lazily).
        grant: The one-time grant a completion is charged to instead (sent as `Wattfare-Grant`).
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: bytes | None = None
    app_user_id: str | None = None
    stream: bool = False
    grant: str | None = field(default=None, repr=False)


def build_request(http: httpx.Client | httpx.AsyncClient, config: ClientConfig, spec: RequestSpec) -> httpx.Request:
    """The `httpx.Request` for a spec (no I/O: building a request only merges settings)."""
    headers = {
        "Authorization": f"Bearer {config.secret_key}",
        "User-Agent": USER_AGENT,
        "Accept": "text/event-stream" if spec.stream else "application/json",
    }
    if spec.body is not None:
        headers["Content-Type"] = "application/json"
    if spec.app_user_id is not None:
        headers["Wattfare-User"] = spec.app_user_id
    if spec.grant is not None:
        headers["Wattfare-Grant"] = spec.grant
    return http.build_request(
        spec.method,
        config.api_url + spec.path,
        params=spec.params,
        content=spec.body,
        headers=headers,
        timeout=config.timeout,
    )


def check_app_user_id(app_user_id: object) -> str:
    """Return the app user id, or raise `UsageError` if it is not a non-empty string."""
    if not isinstance(app_user_id, str) or not app_user_id:
        raise UsageError(f"app_user_id must be a non-empty str, got {app_user_id!r}")
    return app_user_id


def _check_payer(app_user_id: str | None, grant: str | None) -> None:
    # The server refuses a request that names both, or neither; so does the client, before sending anything.
    if (app_user_id is None) == (grant is None):
        raise UsageError("a request is charged to exactly one of an app user and a grant")
    for value, name, header in ((app_user_id, "app_user_id", "Wattfare-User"), (grant, "the grant", "Wattfare-Grant")):
        if value is not None and not (value.isascii() and value.isprintable()):
            raise UsageError(f"{name} must be printable ASCII to be sent in the {header} header")


def usd_amount(value: object, name: str) -> Decimal:
    """`value` (a Decimal, int or str; never a float) as a finite `Decimal` >= 0, or `UsageError` naming `name`."""
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        # Money is never a float here: 0.1 is not 0.1 in binary.
        raise UsageError(f"{name} must be a Decimal, int or str, got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise UsageError(f"{name} is not a number: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise UsageError(f"{name} must be a finite amount >= 0, got {value!r}")
    return amount


def session_request(app_user_id: str, monthly_usd: object) -> RequestSpec:
    """`POST /sessions`."""
    user = json.dumps(check_app_user_id(app_user_id), ensure_ascii=False)
    if monthly_usd is None:
        body = f'{{"appUserId":{user}}}'
    else:
        # Written by hand so the amount goes out as the exact decimal the caller gave, never via a float.
        cap = format(usd_amount(monthly_usd, "monthly_usd"), "f")
        body = f'{{"appUserId":{user},"requestLimit":{{"monthlyUsd":{cap}}}}}'
    return RequestSpec("POST", "/sessions", body=body.encode())


def status_request(app_user_id: str) -> RequestSpec:
    """`GET /status`."""
    return RequestSpec("GET", "/status", params={"appUserId": app_user_id})


def disconnect_request(app_user_id: str) -> RequestSpec:
    """`DELETE /connections/{appUserId}`."""
    return RequestSpec("DELETE", "/connections/" + quote(app_user_id, safe=""))


def models_request() -> RequestSpec:
    """`GET /models`."""
    return RequestSpec("GET", "/models")


def _json_default(value: object) -> object:
    if isinstance(value, BaseModel):
        # Lets a message from a previous completion be sent back as-is (the tool-call loop).
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def chat_request(
    app_user_id: str | None,
    model: str,
    messages: Iterable[MessageParam],
    params: Mapping[str, Any],
    *,
    stream: bool,
    grant: str | None = None,
) -> RequestSpec:
    """`POST /chat/completions`: an OpenAI body, passed through verbatim, for one end user or one grant."""
    _check_payer(app_user_id, grant)
    if not isinstance(model, str) or not model:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise UsageError(f"model must be a non-empty str, got {model!r}")
    body: dict[str, Any] = {"model": model, "messages": list(messages), **params}
    if stream:
        if body.get("stream", True) is not True:
            raise UsageError("stream() always streams; use chat() for a single response")
        body["stream"] = True
        options: Mapping[str, Any] = body.get("stream_options") or {}
        # The last chunk then carries usage and Wattfare's cost: the stream's outcome needs it.
        body["stream_options"] = {**options, "include_usage": True}
    elif body.get("stream"):
        raise UsageError("chat() returns one response; use stream() to stream")
    try:
        content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the chat request is not valid JSON: {exc}") from exc
    return RequestSpec(
        "POST", "/chat/completions", body=content.encode(), app_user_id=app_user_id, stream=stream, grant=grant
    )


def _embedding_input(value: object) -> str | list[str] | list[int] | list[list[int]]:
    """The input as a JSON-ready list (or text), or `UsageError` if it is none of OpenAI's four shapes."""
    if isinstance(value, str):
        return value
    items = _items(value)
    if items:
        if all(isinstance(item, str) for item in items):
            return cast("list[str]", items)
        if all(_is_token(item) for item in items):
            return cast("list[int]", items)
        arrays = [_items(item) for item in items]
        if all(array and all(_is_token(token) for token in array) for array in arrays):
            return cast("list[list[int]]", arrays)
    shape = type(value).__name__ if items is None else "an empty list" if not items else "a list of mixed items"
    raise UsageError(
        "input must be a str, a non-empty list of str, a list of token ids (int) or a list of lists of token ids,"
        f" got {shape}"
    )


def _items(value: object) -> list[object] | None:
    """A sequence's items (a text or bytes is not a sequence of items here), or None."""
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        return None
    return list(cast("Sequence[object]", value))


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def embeddings_request(
    app_user_id: str | None,
    model: str,
    input: object,
    *,
    dimensions: int | None,
    encoding_format: str | None,
    extra_body: Mapping[str, Any] | None,
    grant: str | None = None,
) -> RequestSpec:
    """`POST /embeddings`: OpenAI's embeddings body for one end user or one grant; `extra_body` is merged in last."""
    _check_payer(app_user_id, grant)
    if not isinstance(model, str) or not model:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise UsageError(f"model must be a non-empty str, got {model!r}")
    body: dict[str, Any] = {"model": model, "input": _embedding_input(input)}
    if dimensions is not None:
        if not _is_token(dimensions) or dimensions < 1:
            raise UsageError(f"dimensions must be an int >= 1, got {dimensions!r}")
        body["dimensions"] = dimensions
    if encoding_format is not None:
        if encoding_format not in ("float", "base64"):
            raise UsageError(f"encoding_format must be 'float' or 'base64', got {encoding_format!r}")
        body["encoding_format"] = encoding_format
    if extra_body is not None:
        if not isinstance(extra_body, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise UsageError(f"extra_body must be a mapping of request fields, got {type(extra_body).__name__}")
        body.update(extra_body)
    try:
        content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the embeddings request is not valid JSON: {exc}") from exc
    return RequestSpec("POST", "/embeddings", body=content.encode(), app_user_id=app_user_id, grant=grant)


# ---------------------------------------------------------------- responses


def request_id(response: httpx.Response) -> str | None:
    """Wattfare's id for the request, from `Wattfare-Request-Id`."""
    return response.headers.get("wattfare-request-id")


def decimal_header(headers: httpx.Headers, name: str) -> Decimal | None:
    """A decimal-string header as a `Decimal`, or None when absent or unreadable (a header never fails a call)."""
    value = headers.get(name)
    if not value:
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def parse(model: type[_M], response: httpx.Response) -> _M:
    """Validate a response body (read) as `model`, wrapping a mismatch as an `APIError`."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise APIError(
            f"unexpected {model.__name__} from Wattfare ({response.request.method} {response.request.url.path}):"
            f" {where}: {first['msg']}",
            request_id=request_id(response),
        ) from exc


def parse_models(response: httpx.Response) -> list[ModelInfo]:
    """The `GET /models` body as a list."""
    return parse(ModelList, response).data


def int_header(headers: httpx.Headers, name: str) -> int | None:
    """A non-negative integer header, or None when absent or unreadable."""
    value = (headers.get(name) or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def bool_header(headers: httpx.Headers, name: str) -> bool | None:
    """A `true`/`false` header, or None when absent or anything else."""
    return {"true": True, "false": False}.get((headers.get(name) or "").strip().lower())


def clamping_headers(headers: httpx.Headers) -> tuple[int | None, bool | None]:
    """`Wattfare-Max-Tokens` and `Wattfare-Clamped`: the `max_tokens` sent upstream, and whether the cap lowered it."""
    return int_header(headers, "wattfare-max-tokens"), bool_header(headers, "wattfare-clamped")


def wattfare_info(response: httpx.Response, body: WattfareInfo) -> WattfareInfo:
    """What Wattfare says of a request: its `Wattfare-*` headers, else the body's `wattfare` block."""
    headers = response.headers
    cost = decimal_header(headers, "wattfare-cost-usd")
    remaining = decimal_header(headers, "wattfare-remaining-usd")
    max_tokens, clamped = clamping_headers(headers)
    return WattfareInfo(
        cost_usd=cost if cost is not None else body.cost_usd,
        remaining_usd=remaining if remaining is not None else body.remaining_usd,
        request_id=request_id(response) or body.request_id,
        # No Wattfare-Max-Tokens beside a Wattfare-Clamped means that none was sent.
        max_tokens=max_tokens if max_tokens is not None or clamped is not None else body.max_tokens,
        clamped=clamped if clamped is not None else body.clamped,
    )


def parse_completion(response: httpx.Response) -> ChatCompletion:
    """A completion, with `wattfare` filled from the `Wattfare-*` headers, else from the body's `wattfare`."""
    completion = parse(ChatCompletion, response)
    completion.wattfare = wattfare_info(response, completion.wattfare)
    return completion


def parse_embeddings(response: httpx.Response) -> EmbeddingResponse:
    """Embeddings, with `wattfare` filled from the `Wattfare-*` headers, else from the body's `wattfare`."""
    embeddings = parse(EmbeddingResponse, response)
    embeddings.wattfare = wattfare_info(response, embeddings.wattfare)
    return embeddings
