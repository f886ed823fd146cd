"""What ChatWattfare does with each constructor argument: a field, one of ChatOpenAI's names for one, or a refusal.

`ChatOpenAI` moves any argument it does not know into `model_kwargs`, with a warning, and
`model_kwargs` is sent as request fields. Swapping `ChatOpenAI(...)` for `ChatWattfare(...)` keeps its
arguments, and under that rule `openai_api_key=` went out in the request body: the proxy forwards
fields it does not know to the model provider, so the app's Wattfare secret key reached the provider.
So ChatWattfare sends nothing it was not explicitly given as a request field. Each of ChatOpenAI's
names either means something here (an alias of a field, or a Chat Completions field sent under the
same name) or is refused with what to do instead; any other unknown name is refused, pointing at
`model_kwargs` / `extra_body`, the explicit routes into the body. Those routes and a call's kwargs
refuse the names of client settings, which are never request fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any, Final

from wattfare import UsageError

# ChatOpenAI's names for Chat Completions request fields: sent under the same name, as ChatOpenAI sends them.
CHAT_OPENAI_REQUEST_FIELDS: Final = frozenset({"logit_bias", "service_tier", "store", "verbosity"})

_USE_CLIENT = (
    "pass client=wattfare.Wattfare(http_client=httpx.Client(...)) and async_client="
    "wattfare.AsyncWattfare(http_client=httpx.AsyncClient(...)) to customise HTTP"
)
_RESPONSES_ONLY = "a Responses API option: Wattfare serves Chat Completions only"

# ChatOpenAI's arguments that have no meaning here, with what to do instead.
REFUSED: Final[Mapping[str, str]] = {
    "openai_organization": "an OpenAI organization means nothing to Wattfare, whose app users pay; remove it",
    "organization": "an OpenAI organization means nothing to Wattfare, whose app users pay; remove it",
    "openai_proxy": f"to send through an HTTP proxy, {_USE_CLIENT} (httpx.Client(proxy=...))",
    "http_client": _USE_CLIENT,
    "http_async_client": _USE_CLIENT,
    "default_headers": f"Wattfare requests carry Wattfare's headers; {_USE_CLIENT} (httpx.Client(headers=...))",
    "default_query": _USE_CLIENT,
    "root_client": "pass client=wattfare.Wattfare(...) instead of an OpenAI client",
    "root_async_client": "pass async_client=wattfare.AsyncWattfare(...) instead of an OpenAI client",
    "include_response_headers": "Wattfare's response headers are always in response_metadata['wattfare']",
    "tiktoken_model_name": "ChatWattfare picks the tiktoken encoding from the model id (o200k_base where tiktoken"
    " does not know the model); pass custom_get_token_ids=... to count otherwise",
    "disabled_params": "leave out the parameters a model does not take",
    "reasoning": f"{_RESPONSES_ONLY}; use reasoning_effort=...",
    "truncation": _RESPONSES_ONLY,
    "include": _RESPONSES_ONLY,
    "use_previous_response_id": _RESPONSES_ONLY,
    "use_responses_api": _RESPONSES_ONLY,
}

# How to reach Wattfare, under ChatWattfare's and ChatOpenAI's names: never request fields, wherever they are given.
CLIENT_SETTINGS: Final = frozenset(
    {
        "secret_key",
        "api_key",
        "openai_api_key",
        "base_url",
        "openai_api_base",
        "timeout",
        "request_timeout",
        "max_retries",
        "client",
        "async_client",
        *REFUSED,
    }
)


def check_arguments(values: dict[str, Any], accepted: Collection[str]) -> dict[str, Any]:
    """The constructor's arguments with ChatOpenAI's request fields moved into `model_kwargs`.

    Args:
        values: The constructor's keyword arguments (changed in place).
        accepted: ChatWattfare's field names and aliases.

    Raises:
        wattfare.UsageError: An argument is refused or unknown, or `model_kwargs` / `extra_body` holds a
            client setting, or a field is given twice.
    """
    refused = sorted(name for name in values if name in REFUSED and name not in accepted)
    if refused:
        reasons = "; ".join(f"{name}: {REFUSED[name]}" for name in refused)
        raise UsageError(f"ChatWattfare does not take {', '.join(refused)} ({reasons})")
    unknown = sorted(name for name in values if name not in accepted and name not in CHAT_OPENAI_REQUEST_FIELDS)
    if unknown:
        raise UsageError(_unknown_message(unknown, accepted))
    model_kwargs: dict[str, Any] = dict(values.get("model_kwargs") or {})
    check_request_fields(model_kwargs, "model_kwargs")
    check_request_fields(values.get("extra_body") or {}, "extra_body")
    for name in CHAT_OPENAI_REQUEST_FIELDS.intersection(values):
        if name in model_kwargs:
            raise UsageError(f"{name} is given twice: as an argument and in model_kwargs")
        model_kwargs[name] = values.pop(name)
    if model_kwargs:
        values["model_kwargs"] = model_kwargs
    return values


def check_request_fields(fields: Mapping[str, Any], where: str) -> None:
    """Refuse request fields that are client settings (`api_key`, `timeout`, ...): they never belong in a body.

    Raises:
        wattfare.UsageError: `fields` names a client setting.
    """
    misplaced = sorted(CLIENT_SETTINGS.intersection(fields))
    if misplaced:
        raise UsageError(
            f"{', '.join(misplaced)} in {where} would be sent to the model provider as request fields;"
            " pass client settings to the ChatWattfare constructor (secret_key=..., base_url=..., timeout=...)"
        )


def _unknown_message(unknown: list[str], accepted: Collection[str]) -> str:
    hints = [
        f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, accepted, n=1)) else name
        for name in unknown
    ]
    return (
        f"ChatWattfare does not take {', '.join(hints)}: unknown arguments are not sent anywhere;"
        " to send a request field, put it in model_kwargs={...} or extra_body={...}"
    )
