"""What one LiteLLM call asks of Wattfare: who pays, the OpenAI params, the client settings.

LiteLLM hands a custom provider its arguments in several places. The end user comes from the
standard `user` param, which LiteLLM keeps out of `optional_params` for custom providers but
records on the call's logging object; the `Wattfare-User` header (`extra_headers`) also names one.
A member's one-time grant pays instead when the call names one: `wattfare_grant=<grant token>` (a
keyword LiteLLM does not know, so it reaches `optional_params`), or the `Wattfare-Grant` header. A call
names exactly one of the two.

`optional_params` holds the Chat Completions params LiteLLM knows and, for a custom provider, every
keyword argument it does not know (`litellm.utils.add_provider_specific_params_to_optional_params`).
Those are never sent: the proxy forwards body fields to the model provider, and an `openai_api_key=`
or another provider's credential left in a call would reach it. Only the Chat Completions params
LiteLLM knows and the caller's explicit `extra_body` make the body.

An embedding call (`read_embedding_call`) follows the same rules with OpenAI's embedding params (`dimensions`,
`encoding_format`); LiteLLM hands a custom provider those only through `_embedding_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import httpx
import litellm
from litellm.constants import OPENAI_CHAT_COMPLETION_PARAMS
from litellm.exceptions import BadRequestError, UnsupportedParamsError

from wattfare_litellm._error_mapping import PROVIDER

# How a call reaches its provider: read from the call (the SDK's settings), never a body field, even in extra_body.
_CONNECTION: Final = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "deployment_id",
        "default_headers",
        "extra_headers",
        "timeout",
        "request_timeout",
        "max_retries",
    }
)
# The keyword naming a one-time grant: read apart, never sent as a body field.
GRANT_PARAM: Final = "wattfare_grant"
# LiteLLM's own controls and ours, each read apart: who pays, streaming, the explicit extra fields.
_CONTROLS: Final = frozenset({"user", GRANT_PARAM, "stream", "extra_body"})
# The Chat Completions params LiteLLM knows (its list grows with OpenAI's): sent as given.
_REQUEST_FIELDS: Final = frozenset(OPENAI_CHAT_COMPLETION_PARAMS) - _CONNECTION - _CONTROLS


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach Wattfare for one call; None falls back to the handler's default, then the environment.

    Attributes:
        secret_key: The app's secret key (a deployment's `api_key`).
        base_url: The Wattfare server (a deployment's `api_base`).
        timeout: Seconds per request (or an `httpx.Timeout`).
        max_retries: The SDK's retries; LiteLLM's Router passes 0 because it retries itself.
        busy_retries: The SDK's retries of a busy budget when they differ from `max_retries`: a Router's
            own retries (see `router_retries`).
    """

    secret_key: str | None
    base_url: str | None
    timeout: float | httpx.Timeout | None
    max_retries: int | None
    busy_retries: int | None = None


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat completion for Wattfare.

    Attributes:
        model: The Wattfare model id (`anthropic/claude-sonnet-4`).
        messages: The OpenAI messages.
        params: OpenAI body fields, passed through verbatim (tools, temperature, ...).
        app_user_id: The end user charged, or None when a grant is.
        client: How to reach Wattfare.
        grant: The one-time grant charged instead of a user (its token), or None.
    """

    model: str
    messages: list[Any]
    params: dict[str, Any]
    app_user_id: str | None
    client: ClientSettings
    grant: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """One embeddings request for Wattfare.

    Attributes:
        model: The Wattfare model id (`openai/text-embedding-3-small`).
        input: What to embed: a text, texts, token ids or lists of token ids, as given.
        dimensions: The size of each vector, when given.
        encoding_format: `"float"` or `"base64"`, when given.
        extra_body: The caller's explicit extra request fields.
        app_user_id: The end user charged, or None when a grant is.
        client: How to reach Wattfare.
        grant: The one-time grant charged instead of a user (its token), or None.
    """

    model: str
    # As LiteLLM passed them: the SDK checks them (OpenAI's input shapes, an int >= 1, "float" / "base64").
    input: Any
    dimensions: Any
    encoding_format: Any
    extra_body: dict[str, Any] | None
    app_user_id: str | None
    client: ClientSettings
    grant: str | None = field(default=None, repr=False)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name and isinstance(value, str) and value:
            return value
    return None


def _end_user(optional_params: Mapping[str, Any], logging_obj: Any, headers: Mapping[str, Any] | None) -> str | None:
    user: object = optional_params.get("user")
    if not user:
        details: object = getattr(logging_obj, "model_call_details", None)
        if isinstance(details, Mapping):
            user = cast("Mapping[str, object]", details).get("user")
    if not user:
        user = _header(headers, "wattfare-user")
    return user if isinstance(user, str) and user else None


def _grant(optional_params: Mapping[str, Any], headers: Mapping[str, Any] | None) -> str | None:
    grant: object = optional_params.get(GRANT_PARAM) or _header(headers, "wattfare-grant")
    return grant if isinstance(grant, str) and grant else None


def _hide_grant(logging_obj: Any) -> None:
    """Mask the grant token where LiteLLM keeps the call's keywords for its callbacks, once it has been read.

    LiteLLM hands every success and failure callback (an observability vendor's, the proxy's spend log) the call's
    keywords: `wattfare_grant=` among them, in clear at the top and in `optional_params`. A grant token spends a
    member's money until it is used up, so what they see is `wfg_…` and its last four characters, enough to tell
    two grants apart. The `Wattfare-Grant` header never reaches them (LiteLLM leaves headers out).
    """
    details: object = getattr(logging_obj, "model_call_details", None)
    if not isinstance(details, dict):
        return
    call = cast("dict[str, object]", details)
    for holder in (call, call.get("optional_params"), call.get("litellm_params")):
        if isinstance(holder, dict):
            keywords = cast("dict[str, object]", holder)
            token = keywords.get(GRANT_PARAM)
            if isinstance(token, str) and token:
                keywords[GRANT_PARAM] = f"{token[:4]}…{token[-4:]}" if len(token) > 12 else "…"


def _payer(user: str | None, grant: str | None, model: str, what: str) -> tuple[str | None, str | None]:
    """The (end user, grant) a call is charged to: exactly one is set, else LiteLLM's `BadRequestError`."""
    if user is not None and grant is not None:
        raise BadRequestError(  # pyright: ignore[reportUnknownMemberType]
            message=(
                f"a Wattfare {what} is charged to one of your app's users or to a one-time grant, not both:"
                f" pass user=<your app's user id> or {GRANT_PARAM}=<grant token>"
            ),
            model=model,
            llm_provider=PROVIDER,
        )
    if user is None and grant is None:
        raise BadRequestError(  # pyright: ignore[reportUnknownMemberType]
            message=(
                f"Wattfare charges every {what} to one of your app's users: pass user=<your app's user id>"
                f" (or {GRANT_PARAM}=<grant token> for a member's one-time grant)"
            ),
            model=model,
            llm_provider=PROVIDER,
        )
    return user, grant


def _litellm_param(litellm_params: object, name: str) -> object:
    return cast("Mapping[str, object]", litellm_params).get(name) if isinstance(litellm_params, Mapping) else None


def _drops_params(litellm_params: object) -> bool:
    # LiteLLM's switch for "drop what a provider does not take": per call (or deployment), else process-wide.
    per_call = _litellm_param(litellm_params, "drop_params")
    process_wide: object = getattr(litellm, "drop_params", None)
    return per_call is True or (per_call is None and process_wide is True)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _max_retries(optional_params: Mapping[str, Any]) -> int | None:
    return _count(optional_params.get("max_retries"))


def router_retries(litellm_params: object) -> int | None:
    """The retries a Router allows this call (its `num_retries`), when a Router made it; else None.

    A Router sends its deployments `max_retries=0` and retries failures itself, but a busy budget it cannot
    retry safely: in litellm 1.110.2 (measured) it falls back from a rate limit once its retries run out, even
    from a per-caller `CallerCredentialRateLimitError`, and a fallback outside Wattfare would serve the user
    on the app's bill; the guardrail refusal it never falls back from, it never retries. So a busy budget is
    raised to it as a refusal, and the Router's retries are spent by the SDK inside the attempt instead. A
    Router call is known by the `model_group` it records in the call's metadata, next to its retries
    (`max_retries`).
    """
    if not isinstance(litellm_params, Mapping):
        return None
    metadata: object = cast("Mapping[str, object]", litellm_params).get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    recorded = cast("Mapping[str, object]", metadata)
    return _count(recorded.get("max_retries")) if recorded.get("model_group") else None


def read_call(
    *,
    model: str,
    messages: list[Any],
    optional_params: Mapping[str, Any],
    logging_obj: Any,
    headers: Mapping[str, Any] | None,
    api_key: str | None,
    api_base: str | None,
    timeout: float | httpx.Timeout | None,
    stream: bool,
    litellm_params: object = None,
) -> ChatCall:
    """Read a LiteLLM custom-provider call into a `ChatCall`.

    Raises:
        litellm.UnsupportedParamsError: The call has params that are not Chat Completions params (unless
            LiteLLM's `drop_params` is on: then they are dropped).
        litellm.BadRequestError: Not exactly one of an end user (LiteLLM's `user`) and a grant (`wattfare_grant`)
            was named, or `extra_body` holds a client setting such as `api_key`.
    """
    app_user_id, grant = _payer(
        _end_user(optional_params, logging_obj, headers), _grant(optional_params, headers), model, "completion"
    )
    _hide_grant(logging_obj)
    unknown = sorted(k for k in optional_params if k not in _REQUEST_FIELDS | _CONNECTION | _CONTROLS)
    if unknown and not _drops_params(litellm_params):
        raise UnsupportedParamsError(
            message=(
                f"wattfare/ does not send {', '.join(unknown)}: only Chat Completions params reach the request"
                " body, which Wattfare forwards to the model provider. Put other request fields in"
                " extra_body={...}, or pass drop_params=True to drop them"
            ),
            llm_provider=PROVIDER,
            model=model,
        )
    params = {k: v for k, v in optional_params.items() if k in _REQUEST_FIELDS}
    # As in the OpenAI SDK: extra_body fields are merged into the request body.
    params.update(_extra_body(optional_params, model) or {})
    if not stream:
        params.pop("stream_options", None)
    return ChatCall(
        model=model,
        messages=list(messages),
        params=params,
        app_user_id=app_user_id,
        grant=grant,
        client=ClientSettings(
            secret_key=api_key or None,
            base_url=api_base or None,
            timeout=timeout,
            max_retries=_max_retries(optional_params),
            busy_retries=router_retries(litellm_params),
        ),
    )


def _extra_body(optional_params: Mapping[str, Any], model: str) -> dict[str, Any] | None:
    """The caller's `extra_body`, refused if it holds a connection setting (never a request field)."""
    extra_body: object = optional_params.get("extra_body")
    if not isinstance(extra_body, Mapping):
        return None
    extra = dict(cast("Mapping[str, Any]", extra_body))
    misplaced = sorted(_CONNECTION.intersection(extra))
    if misplaced:
        raise BadRequestError(  # pyright: ignore[reportUnknownMemberType]
            message=(
                f"{', '.join(misplaced)} in extra_body would be sent to the model provider as request fields;"
                " pass the deployment's settings as LiteLLM params (api_key=..., api_base=..., timeout=...)"
            ),
            model=model,
            llm_provider=PROVIDER,
        )
    return extra


# OpenAI's embedding params: sent as given.
_EMBEDDING_FIELDS: Final = frozenset({"dimensions", "encoding_format"})


def read_embedding_call(
    *,
    model: str,
    input: object,
    optional_params: Mapping[str, Any],
    logging_obj: Any,
    api_key: str | None,
    api_base: str | None,
    timeout: float | httpx.Timeout | None,
    litellm_params: object = None,
) -> EmbeddingCall:
    """Read a LiteLLM custom-provider embedding call into an `EmbeddingCall`.

    Raises:
        litellm.UnsupportedParamsError: The call has params that are not embedding params (unless LiteLLM's
            `drop_params` is on: then they are dropped).
        litellm.BadRequestError: Not exactly one of an end user (LiteLLM's `user`) and a grant (`wattfare_grant`)
            was named, or `extra_body` holds a client setting such as `api_key`.
    """
    app_user_id, grant = _payer(
        _end_user(optional_params, logging_obj, None), _grant(optional_params, None), model, "embedding"
    )
    _hide_grant(logging_obj)
    unknown = sorted(k for k in optional_params if k not in _EMBEDDING_FIELDS | _CONNECTION | _CONTROLS)
    if unknown and not _drops_params(litellm_params):
        raise UnsupportedParamsError(
            message=(
                f"wattfare/ does not send {', '.join(unknown)}: only embedding params (dimensions, encoding_format)"
                " reach the request body, which Wattfare forwards to the model provider. Put other request fields"
                " in extra_body={...}, or pass drop_params=True to drop them"
            ),
            llm_provider=PROVIDER,
            model=model,
        )
    router = router_retries(litellm_params)
    max_retries = _count(_litellm_param(litellm_params, "max_retries"))
    return EmbeddingCall(
        model=model,
        input=input,
        dimensions=optional_params.get("dimensions"),
        encoding_format=optional_params.get("encoding_format"),
        extra_body=_extra_body(optional_params, model),
        app_user_id=app_user_id,
        grant=grant,
        client=ClientSettings(
            secret_key=api_key or None,
            base_url=api_base or None,
            timeout=timeout,
            # A Router retries embeddings itself and, unlike its chat calls, says so to no one: its call records
            # its retries in the metadata, and the SDK then retries only a busy budget, as for chat.
            max_retries=max_retries if max_retries is not None or router is None else 0,
            busy_retries=router,
        ),
    )
