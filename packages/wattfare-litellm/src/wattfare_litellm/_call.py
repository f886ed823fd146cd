"""What one LiteLLM call asks of Wattfare: the end user, the OpenAI params, the client settings.

LiteLLM hands a custom provider its arguments in several places. The end user comes from the
standard `user` param, which LiteLLM keeps out of `optional_params` for custom providers but
records on the call's logging object; the `Wattfare-User` header (`extra_headers`) also names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
from litellm.exceptions import BadRequestError

from wattfare_litellm._error_mapping import PROVIDER

# LiteLLM's own controls, not OpenAI body fields: they must not reach Wattfare's body.
_NOT_FORWARDED = frozenset({"user", "stream", "max_retries", "extra_body", "extra_headers"})


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach Wattfare for one call; None falls back to the handler's default, then the environment.

    Attributes:
        secret_key: The app's secret key (a deployment's `api_key`).
        base_url: The Wattfare server (a deployment's `api_base`).
        timeout: Seconds per request (or an `httpx.Timeout`).
        max_retries: The SDK's retries; LiteLLM's Router passes 0 because it retries itself.
    """

    secret_key: str | None
    base_url: str | None
    timeout: float | httpx.Timeout | None
    max_retries: int | None


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat completion for Wattfare.

    Attributes:
        model: The Wattfare model id (`anthropic/claude-sonnet-4`).
        messages: The OpenAI messages.
        params: OpenAI body fields, passed through verbatim (tools, temperature, ...).
        app_user_id: The end user charged.
        client: How to reach Wattfare.
    """

    model: str
    messages: list[Any]
    params: dict[str, Any]
    app_user_id: str
    client: ClientSettings


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


def _max_retries(optional_params: Mapping[str, Any]) -> int | None:
    value = optional_params.get("max_retries")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


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
) -> ChatCall:
    """Read a LiteLLM custom-provider call into a `ChatCall`.

    Raises:
        litellm.BadRequestError: No end user was named (pass LiteLLM's `user`).
    """
    app_user_id = _end_user(optional_params, logging_obj, headers)
    if app_user_id is None:
        raise BadRequestError(  # pyright: ignore[reportUnknownMemberType]
            message="Wattfare charges every completion to one of your app's users: pass user=<your app's user id>",
            model=model,
            llm_provider=PROVIDER,
        )
    params = {k: v for k, v in optional_params.items() if k not in _NOT_FORWARDED}
    extra_body: object = optional_params.get("extra_body")
    if isinstance(extra_body, Mapping):
        # As in the OpenAI SDK: extra_body fields are merged into the request body.
        params.update(cast("Mapping[str, Any]", extra_body))
    if not stream:
        params.pop("stream_options", None)
    return ChatCall(
        model=model,
        messages=list(messages),
        params=params,
        app_user_id=app_user_id,
        client=ClientSettings(
            secret_key=api_key or None,
            base_url=api_base or None,
            timeout=timeout,
            max_retries=_max_retries(optional_params),
        ),
    )
