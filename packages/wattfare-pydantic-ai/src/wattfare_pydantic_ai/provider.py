"""`WattfareProvider`: Pydantic AI's OpenAI-compatible provider, pointed at Wattfare for one end user or one grant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from openai import AsyncOpenAI, Omit
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from wattfare import UsageError
from wattfare.openai_compat import PAYER_HEADERS, api_url, payer_headers, secret_key

if TYPE_CHECKING:
    import httpx2

__all__ = ["WattfareProvider"]


class WattfareProvider(OpenAICompatibleProvider):
    """Pydantic AI's provider for Wattfare: every model request is charged to `user_id`'s budget (or to a `grant`).

    Use it with `OpenAIChatModel` (Wattfare serves Chat Completions, not the Responses API):

        >>> from pydantic_ai import Agent
        >>> from pydantic_ai.models.openai import OpenAIChatModel
        >>> provider = WattfareProvider(user_id="user_42", api_key="sk_test_123")
        >>> agent = Agent(OpenAIChatModel("openai/gpt-4o-mini", provider=provider))

    Tools, structured output (`ToolOutput`, `NativeOutput`) and streaming work as with OpenAI. Wattfare's refusals
    reach you once, as Pydantic AI's `ModelHTTPError` with Wattfare's code in `provider_error_code`
    (`budget_exceeded`, `not_connected`, `funding_invalid`, and `grant_invalid` once a one-time grant is spent: also
    `ModelQuotaExceededError`, status 402; `budget_busy`: `ModelRateLimitError`, 429). The openai client under it
    retries what Wattfare's own client retries (connection errors, 408/409/429/5xx, honouring `Retry-After`), never
    a 402, 401 or 404; the agent retries no model error. `model_settings={"max_retries": 0}` turns the client's
    retries off.

    Args:
        user_id: The app's id for the end user who pays (sent as the `Wattfare-User` header). None: name one
            per request with `for_user`.
        grant: Instead of a user, a member's one-time grant token (sent as the `Wattfare-Grant` header); see
            `for_grant`.
        api_key: The app's secret key (`sk_test_…` / `sk_live_…`); defaults to `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server (or its `/api/v1` root); defaults to `WATTFARE_BASE_URL`, then
            `http://127.0.0.1:8787` (`wattfare dev`).
        http_client: An `httpx2.AsyncClient` to send through (proxies, transports); the caller closes it.
        openai_client: An `AsyncOpenAI` already pointed at Wattfare, instead of `api_key`, `base_url` and
            `http_client` (what `for_user` passes to share a connection pool).

    Raises:
        wattfare.UsageError: The secret key is missing or is not one, `base_url` is not an http(s) URL, both
            `user_id` and `grant` are given, or one of them cannot be sent in a header.
    """

    def __init__(
        self,
        *,
        user_id: str | None = None,
        grant: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        openai_client: AsyncOpenAI | None = None,
    ) -> None:
        # Set on the providers `for_user` makes: the provider whose HTTP client they share, and the client copied.
        self._parent: WattfareProvider | None = None
        self._copied_from: tuple[AsyncOpenAI, object] | None = None
        self._headers = _identity(user_id, grant)
        if openai_client is not None:
            if api_key is not None or base_url is not None or http_client is not None:
                raise UsageError("pass either openai_client or api_key / base_url / http_client, not both")
            super().__init__("wattfare", openai_client=openai_client)
        else:
            super().__init__(
                "wattfare", base_url=api_url(base_url), api_key=secret_key(api_key), http_client=http_client
            )
        if self._headers is not None:
            # A copy on the same HTTP client: Pydantic AI still manages it (and replaces it on another event loop).
            self._client = self._client.with_options(default_headers=self._headers)
        self._user_id = user_id

    @property
    def user_id(self) -> str | None:
        """The end user whose budget this provider's requests are charged to (None for a grant's provider)."""
        return self._user_id

    @property
    def client(self) -> AsyncOpenAI:
        """The `AsyncOpenAI` client the model sends through, naming this provider's user (or grant)."""
        parent = self._parent
        if parent is None:
            return self._client
        # Follow the parent's client: Pydantic AI replaces it when a run is on another event loop.
        source = (parent.client, parent._own_http_client)
        copied = self._copied_from
        if copied is None or copied[0] is not source[0] or copied[1] is not source[1]:
            self._client = parent.client.with_options(default_headers=self._headers)
            self._copied_from = source
        return self._client

    def for_user(self, user_id: str) -> WattfareProvider:
        """A provider for another end user, sharing this one's connection pool: cheap enough to make per request.

        It follows this provider's HTTP client (Pydantic AI replaces a client it made when a run is on another
        event loop), so use it while this provider is open.
        """
        return self._child(user_id=user_id)

    def for_grant(self, grant: str) -> WattfareProvider:
        """A provider charged to a member's one-time grant (its token) on this one's connection pool, as `for_user`.

        Once the grant is spent, a request raises `ModelHTTPError` with `provider_error_code` `grant_invalid`.
        """
        return self._child(grant=grant)

    def _child(self, *, user_id: str | None = None, grant: str | None = None) -> WattfareProvider:
        parent = self._parent or self
        child = WattfareProvider(user_id=user_id, grant=grant, openai_client=parent.client)
        child._parent, child._copied_from = parent, (parent.client, parent._own_http_client)
        return child

    def _refresh_http_client(self) -> None:
        # Pydantic AI calls this at the start of each run; the client a `for_user` provider uses is its parent's.
        if self._parent is not None:
            self._parent._refresh_http_client()
        else:
            super()._refresh_http_client()


def _identity(user_id: str | None, grant: str | None) -> Mapping[str, str] | None:
    """The header naming who pays, with the other payer header omitted (a copy keeps its source's headers)."""
    headers = payer_headers(user_id=user_id, grant=grant)
    if headers is None:
        return None
    # openai drops an `Omit` header: a parent named the other payer, and the server refuses a request naming both.
    omitted: dict[str, str | Omit] = {name: Omit() for name in PAYER_HEADERS if name not in headers}
    return cast("Mapping[str, str]", {**omitted, **headers})
