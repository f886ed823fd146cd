"""What a stock `openai` client needs to call Wattfare, for frameworks that take only such a client.

Pydantic AI and the OpenAI Agents SDK build their models on `openai.AsyncOpenAI`, so their Wattfare adapters
configure one instead of wrapping `wattfare.Wattfare`. They resolve the key and the URL here, with the same names,
defaults and checks as the SDK's own clients, so the two paths cannot drift. The values are always handed to the
openai client explicitly, so it never falls back to `OPENAI_API_KEY` / `OPENAI_BASE_URL`: an OpenAI key never
reaches Wattfare, and a Wattfare key never reaches OpenAI.

    >>> from openai import AsyncOpenAI  # doctest: +SKIP
    >>> from wattfare import openai_compat  # doctest: +SKIP
    >>> client = AsyncOpenAI(  # doctest: +SKIP
    ...     api_key=openai_compat.secret_key(), base_url=openai_compat.api_url(),
    ...     default_headers=openai_compat.user_header("user_42"),
    ... )
"""

from __future__ import annotations

import os

from wattfare._client._core import resolve_api_url, resolve_secret_key
from wattfare._exceptions import UsageError

__all__ = ["USER_HEADER", "api_url", "secret_key", "user_header"]

USER_HEADER = "Wattfare-User"


def secret_key(api_key: str | None = None) -> str:
    """The app's secret key: `api_key`, else `WATTFARE_SECRET_KEY`; `UsageError` when missing or not one.

    Read when called, never at import.
    """
    return resolve_secret_key(api_key, os.environ)


def api_url(base_url: str | None = None) -> str:
    """The OpenAI-compatible root (`…/api/v1`) of `base_url`, else `WATTFARE_BASE_URL`, else the dev server.

    The server root and the API root are both accepted.
    """
    return resolve_api_url(base_url, os.environ)


def user_header(user_id: object) -> dict[str, str]:
    """The `Wattfare-User` header naming the end user charged; `UsageError` for an id a header cannot carry."""
    if not isinstance(user_id, str) or not user_id or not user_id.isascii() or not user_id.isprintable():
        raise UsageError(f"user_id must be a non-empty printable ASCII str (sent as {USER_HEADER}), got {user_id!r}")
    return {USER_HEADER: user_id}
