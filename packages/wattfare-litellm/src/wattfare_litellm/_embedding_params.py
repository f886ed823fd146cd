"""Why `litellm.embedding(model="wattfare/...", user=...)` reaches the provider at all: its params, routed to it.

`litellm.embedding` maps OpenAI's embedding params (`user`, `dimensions`, `encoding_format`) for the provider in
`litellm.utils.get_optional_params_embeddings` before it calls any handler. For a provider it has no embedding
config for that is neither OpenAI, Azure nor one of its OpenAI-compatible providers (a custom provider, such as
`wattfare`), that function's last branch takes no param at all: any one given raises `UnsupportedParamsError`
("Setting {'user': 'u'} is not supported by wattfare"), and with `drop_params` every one is dropped, the end
user included (litellm 1.110.2, `litellm/utils.py`, the `else` branches after `ollama`). Chat completions have no
such gate for a custom provider, which is why `litellm.completion(..., user=...)` always worked.

So a Wattfare handler, once built, wraps that function where its one caller reads it (`litellm.main`, which
imported it by name): for a provider whose registered handler is a `WattfareLLM`, every param reaches the handler
as given (`_call.read_embedding_call` sends OpenAI's, refuses the rest or, under `drop_params`, drops them, as a chat
call does); any other provider's call is LiteLLM's own, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import litellm
import litellm.main

__all__ = ["route_embedding_params"]

# `get_optional_params_embeddings`' own arguments that are LiteLLM's controls, never a param for the provider.
_LITELLM_CONTROLS: Final = frozenset(
    {"model", "custom_llm_provider", "allowed_openai_params", "drop_params", "additional_drop_params"}
)
_ROUTED: Final = "__wattfare_routes_embedding_params__"
_WRAPPED: Final = "get_optional_params_embeddings"  # a global of `litellm.main`, which `litellm.main.embedding` calls


def route_embedding_params(handler_type: type) -> None:
    """Let `litellm.embedding` hand its params to providers whose handler is a `handler_type`; idempotent."""
    litellm_own = cast("Callable[..., dict[str, Any]]", getattr(litellm.main, _WRAPPED))
    if getattr(litellm_own, _ROUTED, False):
        return

    def get_optional_params_embeddings(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if not args and _served_by(kwargs.get("custom_llm_provider"), handler_type):
            return {
                name: value for name, value in kwargs.items() if name not in _LITELLM_CONTROLS and value is not None
            }
        return litellm_own(*args, **kwargs)

    setattr(get_optional_params_embeddings, _ROUTED, True)
    setattr(litellm.main, _WRAPPED, get_optional_params_embeddings)


def _served_by(provider: object, handler_type: type) -> bool:
    if not isinstance(provider, str):
        return False
    entries = cast("list[Mapping[str, object]]", litellm.custom_provider_map)
    return any(
        entry.get("provider") == provider and isinstance(entry.get("custom_handler"), handler_type) for entry in entries
    )
