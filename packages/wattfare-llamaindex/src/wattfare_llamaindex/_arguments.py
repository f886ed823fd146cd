"""What `WattfareLLM` and `WattfareEmbedding` do with each constructor argument: a field, a name LlamaIndex's `OpenAI`
(or `OpenAIEmbedding`) gives one, or a refusal.

LlamaIndex's `OpenAI(api_key=..., api_base=..., default_headers=..., reuse_client=...)` is what
`WattfareLLM` replaces, and a swapped-in constructor call keeps those arguments. Pydantic would drop the
ones `WattfareLLM` has no field for without a word: `api_key=` was ignored and the key came from the
environment instead. So each of `OpenAI`'s names either means something here (an alias of a parameter,
or a Chat Completions field moved into `additional_kwargs`) or is refused with what to do instead, and
any other unknown name is refused, pointing at `additional_kwargs`, the explicit route into the body.
That route and a call's keyword arguments refuse the names of client settings, which are never request
fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from wattfare import UsageError

__all__ = ["EMBEDDING", "LLM", "ArgumentRules", "check_request_fields", "resolve_arguments"]

# `OpenAI`'s names for WattfareLLM's parameters.
ALIASES: Final[Mapping[str, str]] = {"api_key": "secret_key", "api_base": "base_url", "max_new_tokens": "max_tokens"}

# `OpenAI`'s names for Chat Completions fields: sent under the same name, from `additional_kwargs`.
REQUEST_FIELDS: Final = frozenset({"logprobs", "top_logprobs", "reasoning_effort"})

_USE_HTTP_CLIENT = "pass http_client=httpx.Client(...) and async_http_client=httpx.AsyncClient(...)"

# `OpenAI`'s arguments that have no meaning here, with what to do instead.
REFUSED: Final[Mapping[str, str]] = {
    "api_version": "an Azure OpenAI API version means nothing to Wattfare; remove it",
    "default_headers": f"Wattfare requests carry Wattfare's headers; {_USE_HTTP_CLIENT} with headers=...",
    "openai_client": f"WattfareLLM sends through the Wattfare SDK, not an OpenAI client; {_USE_HTTP_CLIENT}",
    "async_openai_client": f"WattfareLLM sends through the Wattfare SDK, not an OpenAI client; {_USE_HTTP_CLIENT}",
    "reuse_client": "WattfareLLM always reuses one connection pool per event loop; remove it",
    "modalities": "WattfareLLM answers in text; remove it",
    "audio_config": "WattfareLLM answers in text; remove it",
}

# How to reach Wattfare, under WattfareLLM's and OpenAI's names: never request fields, wherever they are given.
CLIENT_SETTINGS: Final = frozenset(
    {"secret_key", "base_url", "timeout", "max_retries", "http_client", "async_http_client", *ALIASES, *REFUSED}
    - {"max_new_tokens"}
)


# `OpenAIEmbedding`'s arguments that have no meaning here, with what to do instead.
REFUSED_BY_EMBEDDING: Final[Mapping[str, str]] = {
    "api_version": REFUSED["api_version"],
    "default_headers": REFUSED["default_headers"],
    "reuse_client": REFUSED["reuse_client"],
    "mode": "OpenAIEmbedding's mode picks one of OpenAI's model families; name the model with model=...",
    "deployment_name": "an Azure deployment means nothing to Wattfare; name the model with model=...",
}


@dataclass(frozen=True, slots=True)
class ArgumentRules:
    """One class's rules: its name, the replaced class's aliases, request fields and refusals.

    Attributes:
        owner: The class's name, as errors name it.
        aliases: The replaced class's names for the class's parameters.
        request_fields: The replaced class's names for request fields, moved into `additional_kwargs`.
        refused: The replaced class's arguments that mean nothing here, with what to do instead.
    """

    owner: str
    aliases: Mapping[str, str]
    request_fields: frozenset[str]
    refused: Mapping[str, str]


LLM: Final = ArgumentRules("WattfareLLM", ALIASES, REQUEST_FIELDS, REFUSED)
EMBEDDING: Final = ArgumentRules(
    "WattfareEmbedding",
    {name: ALIASES[name] for name in ("api_key", "api_base")},
    frozenset(),
    REFUSED_BY_EMBEDDING,
)


def resolve_arguments(
    arguments: Mapping[str, Any], accepted: Collection[str], rules: ArgumentRules = LLM
) -> dict[str, Any]:
    """The constructor's arguments under the class's names, the replaced class's request fields in `additional_kwargs`.

    Args:
        arguments: The keyword arguments given (explicit `secret_key` / `base_url` included when not None).
        accepted: The class's parameter and field names.
        rules: Whose rules (WattfareLLM's by default).

    Raises:
        UsageError: An argument is refused, unknown or given twice, or `additional_kwargs` holds a client setting.
    """
    refused = sorted(name for name in arguments if name in rules.refused)
    if refused:
        reasons = "; ".join(f"{name}: {rules.refused[name]}" for name in refused)
        raise UsageError(f"{rules.owner} does not take {', '.join(refused)} ({reasons})")
    known = {*accepted, *rules.aliases, *rules.request_fields}
    unknown = sorted(name for name in arguments if name not in known)
    if unknown:
        raise UsageError(_unknown_message(unknown, accepted, rules.owner))
    resolved: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for name, value in arguments.items():
        target = rules.aliases.get(name, name)
        if target in given_as:
            raise UsageError(f"{target} is given twice (as {given_as[target]} and as {name})")
        resolved[target], given_as[target] = value, name
    additional: dict[str, Any] = dict(resolved.get("additional_kwargs") or {})
    check_request_fields(additional, "additional_kwargs", rules.owner)
    for name in rules.request_fields.intersection(resolved):
        if name in additional:
            raise UsageError(f"{name} is given twice: as an argument and in additional_kwargs")
        additional[name] = resolved.pop(name)
    if additional:
        resolved["additional_kwargs"] = additional
    return resolved


def check_request_fields(fields: Mapping[str, Any], where: str, owner: str = "WattfareLLM") -> None:
    """Refuse request fields that are client settings (`api_key`, `timeout`, ...): they never belong in a body.

    Raises:
        UsageError: `fields` names a client setting.
    """
    misplaced = sorted(CLIENT_SETTINGS.intersection(fields))
    if misplaced:
        raise UsageError(
            f"{', '.join(misplaced)} in {where} would be sent to the model provider as request fields;"
            f" pass client settings to the {owner} constructor (secret_key=..., base_url=..., timeout=...)"
        )


def _unknown_message(unknown: list[str], accepted: Collection[str], owner: str) -> str:
    hints = [
        f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, accepted, n=1)) else name
        for name in unknown
    ]
    return (
        f"{owner} does not take {', '.join(hints)}: unknown arguments are not sent anywhere;"
        " to send a request field, put it in additional_kwargs={...}"
    )
