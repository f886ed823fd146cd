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

For a member's one-time grant, send `openai_compat.grant_header(grant_token)` instead of the user header: a request
names exactly one of the two.
"""

from __future__ import annotations

import os

from wattfare._client._core import resolve_api_url, resolve_secret_key
from wattfare._client._grants import check_grant_token
from wattfare._exceptions import UsageError

__all__ = [
    "GRANT_HEADER",
    "PAYER_HEADERS",
    "USER_HEADER",
    "api_url",
    "grant_header",
    "payer_headers",
    "secret_key",
    "user_header",
]

USER_HEADER = "Wattfare-User"
GRANT_HEADER = "Wattfare-Grant"
PAYER_HEADERS = (USER_HEADER, GRANT_HEADER)
"""The headers that name who pays; a request carries exactly one (the server refuses both)."""


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


def grant_header(grant: object) -> dict[str, str]:
    """The `Wattfare-Grant` header naming the one-time grant charged; `UsageError` for a token a header cannot carry."""
    return {GRANT_HEADER: check_grant_token(grant)}


def payer_headers(*, user_id: str | None = None, grant: str | None = None) -> dict[str, str] | None:
    """The header naming who pays: `Wattfare-User` for `user_id`, `Wattfare-Grant` for `grant`; None for neither.

    Raises:
        UsageError: Both are given (the server refuses a request that names both), or one cannot be sent in a header.
    """
    if user_id is not None and grant is not None:
        raise UsageError("name the end user (user_id=...) or a one-time grant (grant=...) who pays, not both")
    if user_id is not None:
        return user_header(user_id)
    return grant_header(grant) if grant is not None else None
