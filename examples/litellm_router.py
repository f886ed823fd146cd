"""A LiteLLM Router over two Wattfare models, with a fallback; every call is charged to the end user named by `user`.

With `make dev` running, in another terminal:

    set -a; . .wattfare/dev.env; set +a
    python examples/litellm_router.py
"""

# litellm re-exports `Router` without `__all__`, so pyright calls its documented spelling a private import.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import os

# Wattfare reports each call's cost, so LiteLLM's downloadable price map is not needed.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from typing import Any

import litellm

import wattfare_litellm
from wattfare import Wattfare
from wattfare_litellm import WattfareBudgetExceededError, WattfareNotConnectedError


def build_router(secret_key: str | None = None, base_url: str | None = None, **router_options: Any) -> litellm.Router:
    """Two model groups on one Wattfare app; "smart" falls back to "fast" when its provider fails."""
    wattfare_litellm.register()
    app = {
        "api_key": secret_key or os.environ["WATTFARE_SECRET_KEY"],
        "api_base": base_url or os.environ.get("WATTFARE_BASE_URL", "http://127.0.0.1:8787"),
    }
    model_list: list[dict[str, Any]] = [
        {"model_name": "smart", "litellm_params": {"model": "wattfare/anthropic/claude-sonnet-4", **app}},
        {"model_name": "fast", "litellm_params": {"model": "wattfare/openai/gpt-4o-mini", **app}},
    ]
    return litellm.Router(model_list=model_list, fallbacks=[{"smart": ["fast"]}], num_retries=2, **router_options)


def main() -> None:
    router = build_router()
    messages = [{"role": "user", "content": "Name a colour."}]

    reply: Any = router.completion(model="smart", messages=messages, user="user_42")
    print(reply.choices[0].message.content)
    print(f"charged to user_42: ${reply.usage.cost}")

    # A user whose cap is spent gets a typed error; the deployment stays up for everyone else.
    Wattfare().create_session("user_broke", monthly_usd="0.000001")  # test keys connect the user with this cap
    try:
        router.completion(model="smart", messages=messages, user="user_broke")
    except WattfareNotConnectedError:
        print("user_broke: show the Connect AI budget button")
    except WattfareBudgetExceededError as exc:
        print(f"user_broke: cap reached until {exc.resets_at:%Y-%m-%d}")

    reply = router.completion(model="fast", messages=messages, user="user_42")
    print(f"still serving user_42: {reply.choices[0].message.content}")


if __name__ == "__main__":
    main()
