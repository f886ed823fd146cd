"""What ChatWattfare (and WattfareEmbeddings) does with each constructor argument: a field, one of ChatOpenAI's (and
OpenAIEmbeddings') names for one, or a refusal.

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
from dataclasses import dataclass
from typing import Any, Final

from langchain_core.utils import get_pydantic_field_names
from pydantic import AliasChoices, BaseModel

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


# OpenAIEmbeddings' arguments that have no meaning here, with what to do instead.
_NO_TOKENIZING = "WattfareEmbeddings sends each text whole (the model refuses one that is too long); remove it"
REFUSED_BY_EMBEDDINGS: Final[Mapping[str, str]] = {
    **{name: REFUSED[name] for name in ("openai_organization", "organization", "openai_proxy", "http_client")},
    **{name: REFUSED[name] for name in ("http_async_client", "default_headers", "default_query")},
    "headers": REFUSED["default_headers"],
    "deployment": "an Azure deployment means nothing to Wattfare; name the model with model=...",
    "openai_api_version": "an Azure OpenAI API version means nothing to Wattfare; remove it",
    "openai_api_type": "an Azure OpenAI API type means nothing to Wattfare; remove it",
    "tiktoken_model_name": _NO_TOKENIZING,
    "tiktoken_enabled": _NO_TOKENIZING,
    "embedding_ctx_length": _NO_TOKENIZING,
    "check_embedding_ctx_length": _NO_TOKENIZING,
    "allowed_special": _NO_TOKENIZING,
    "disallowed_special": _NO_TOKENIZING,
    "retry_min_seconds": "the core client's backoff (honouring Retry-After) decides the wait; set max_retries=...",
    "retry_max_seconds": "the core client's backoff (honouring Retry-After) decides the wait; set max_retries=...",
    "show_progress_bar": "WattfareEmbeddings shows no progress bar; remove it",
    "skip_empty": "WattfareEmbeddings embeds every text it is given; leave empty texts out yourself",
}


@dataclass(frozen=True, slots=True)
class ArgumentRules:
    """One class's rules: its name, the replaced class's request fields and refusals, and its routes into the body.

    Attributes:
        owner: The class's name, as errors name it.
        request_fields: The replaced class's names for request fields, moved into `model_kwargs`.
        refused: The replaced class's arguments that mean nothing here, with what to do instead.
        client_settings: Names that are never request fields, wherever they are given.
        body_routes: How the class's errors name its explicit routes into the body.
    """

    owner: str
    request_fields: frozenset[str]
    refused: Mapping[str, str]
    client_settings: frozenset[str]
    body_routes: str


CHAT: Final = ArgumentRules(
    owner="ChatWattfare",
    request_fields=CHAT_OPENAI_REQUEST_FIELDS,
    refused=REFUSED,
    client_settings=CLIENT_SETTINGS,
    body_routes="model_kwargs={...} or extra_body={...}",
)
EMBEDDINGS: Final = ArgumentRules(
    owner="WattfareEmbeddings",
    request_fields=frozenset(),
    refused=REFUSED_BY_EMBEDDINGS,
    client_settings=CLIENT_SETTINGS | frozenset(REFUSED_BY_EMBEDDINGS),
    body_routes="model_kwargs={...}",
)


def accepted_names(model: type[BaseModel]) -> set[str]:
    """A model's field names and aliases, including alternative names such as `api_key` for `secret_key`."""
    names = get_pydantic_field_names(model)
    for info in model.model_fields.values():
        if isinstance(info.validation_alias, AliasChoices):
            names.update(choice for choice in info.validation_alias.choices if isinstance(choice, str))
    return names


def check_arguments(values: dict[str, Any], accepted: Collection[str], rules: ArgumentRules = CHAT) -> dict[str, Any]:
    """The constructor's arguments with the replaced class's request fields moved into `model_kwargs`.

    Args:
        values: The constructor's keyword arguments (changed in place).
        accepted: The class's field names and aliases.
        rules: Whose rules (ChatWattfare's by default).

    Raises:
        wattfare.UsageError: An argument is refused or unknown, or `model_kwargs` / `extra_body` holds a
            client setting, or a field is given twice.
    """
    refused = sorted(name for name in values if name in rules.refused and name not in accepted)
    if refused:
        reasons = "; ".join(f"{name}: {rules.refused[name]}" for name in refused)
        raise UsageError(f"{rules.owner} does not take {', '.join(refused)} ({reasons})")
    unknown = sorted(name for name in values if name not in accepted and name not in rules.request_fields)
    if unknown:
        raise UsageError(_unknown_message(unknown, accepted, rules))
    model_kwargs: dict[str, Any] = dict(values.get("model_kwargs") or {})
    check_request_fields(model_kwargs, "model_kwargs", rules)
    check_request_fields(values.get("extra_body") or {}, "extra_body", rules)
    for name in rules.request_fields.intersection(values):
        if name in model_kwargs:
            raise UsageError(f"{name} is given twice: as an argument and in model_kwargs")
        model_kwargs[name] = values.pop(name)
    if model_kwargs:
        values["model_kwargs"] = model_kwargs
    return values


def check_request_fields(fields: Mapping[str, Any], where: str, rules: ArgumentRules = CHAT) -> None:
    """Refuse request fields that are client settings (`api_key`, `timeout`, ...): they never belong in a body.

    Raises:
        wattfare.UsageError: `fields` names a client setting.
    """
    misplaced = sorted(rules.client_settings.intersection(fields))
    if misplaced:
        raise UsageError(
            f"{', '.join(misplaced)} in {where} would be sent to the model provider as request fields;"
            f" pass client settings to the {rules.owner} constructor (secret_key=..., base_url=..., timeout=...)"
        )


def _unknown_message(unknown: list[str], accepted: Collection[str], rules: ArgumentRules) -> str:
    hints = [
        f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, accepted, n=1)) else name
        for name in unknown
    ]
    return (
        f"{rules.owner} does not take {', '.join(hints)}: unknown arguments are not sent anywhere;"
        f" to send a request field, put it in {rules.body_routes}"
    )
