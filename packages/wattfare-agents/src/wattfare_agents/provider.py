"""`WattfareModelProvider` and `wattfare_model`: the Agents SDK's Chat Completions model, pointed at Wattfare."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from agents import ModelProvider, OpenAIChatCompletionsModel
from openai import AsyncOpenAI, Omit

from wattfare import UsageError
from wattfare.openai_compat import PAYER_HEADERS, api_url, payer_headers, secret_key

if TYPE_CHECKING:
    import httpx2

__all__ = ["WattfareModelProvider", "wattfare_model"]


class WattfareModelProvider(ModelProvider):
    """The Agents SDK's model provider for Wattfare: every model call of a run is charged to `user_id` (or a `grant`).

    Give it to a run, and name models by their Wattfare ids (`openai/gpt-4o-mini`, `anthropic/claude-sonnet-4`):

        >>> from agents import Agent, RunConfig, Runner
        >>> provider = WattfareModelProvider(api_key="sk_test_123")  # once: it holds the connection pool
        >>> agent = Agent(name="Assistant", model="openai/gpt-4o-mini")
        >>> config = RunConfig(model_provider=provider.for_user("user_42"), tracing_disabled=True)
        >>> Runner.run_sync(agent, "Hi", run_config=config)  # doctest: +SKIP

    Models are `OpenAIChatCompletionsModel`s (Wattfare serves Chat Completions, not the Responses API), so
    tools, handoffs, `output_type` and `Runner.run_streamed` work as with OpenAI. Wattfare's refusals reach you
    once, as the `openai.APIStatusError` the SDK raises, with Wattfare's code in `exc.code` (`budget_exceeded`,
    `not_connected`, `funding_invalid`, `grant_invalid` at status 402, `budget_busy` at 429, ...). The openai client
    retries what Wattfare's own client retries (connection errors, 408/409/429/5xx, honouring `Retry-After`), never
    a 402, 401 or 404; the runner's opt-in retries (`ModelSettings(retry=...)`) follow the same
    `x-should-retry: false`.

    Tracing is left as you set it: the SDK exports traces (your users' prompts and answers) to OpenAI when an
    OpenAI key is configured. This provider never gives the SDK a key for that, and the Wattfare key is never one.
    Turn it off per run with `RunConfig(tracing_disabled=True)`, or for the process with
    `agents.set_tracing_disabled(True)`.

    Args:
        user_id: The app's id for the end user who pays (sent as the `Wattfare-User` header). None: name one
            per run with `for_user`.
        grant: Instead of a user, a member's one-time grant token (sent as the `Wattfare-Grant` header); see
            `for_grant`. Once the grant is spent, a model call raises with `exc.code` `grant_invalid`.
        api_key: The app's secret key (`sk_test_…` / `sk_live_…`); defaults to `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server (or its `/api/v1` root); defaults to `WATTFARE_BASE_URL`, then
            `http://127.0.0.1:8787` (`wattfare dev`).
        http_client: An `httpx2.AsyncClient` to send through (proxies, transports); the caller closes it.
        openai_client: An `AsyncOpenAI` already pointed at Wattfare, instead of `api_key`, `base_url` and
            `http_client` (what `for_user` passes to share a connection pool); the caller closes it.

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
        headers = _identity(user_id, grant)
        if openai_client is not None:
            if api_key is not None or base_url is not None or http_client is not None:
                raise UsageError("pass either openai_client or api_key / base_url / http_client, not both")
            client = openai_client
        else:
            client = AsyncOpenAI(api_key=secret_key(api_key), base_url=api_url(base_url), http_client=http_client)
        self._owned = client if openai_client is None else None
        # A copy shares the client's connection pool; only the header differs.
        self._client = client.with_options(default_headers=headers) if headers is not None else client
        self._user_id = user_id

    @property
    def user_id(self) -> str | None:
        """The end user whose budget this provider's model calls are charged to (None for a grant's provider)."""
        return self._user_id

    def for_user(self, user_id: str) -> WattfareModelProvider:
        """A provider for another end user, sharing this one's connection pool: cheap enough to make per run.

        It lives as long as this provider: use it until this provider's `aclose()`.
        """
        return WattfareModelProvider(user_id=user_id, openai_client=self._client)

    def for_grant(self, grant: str) -> WattfareModelProvider:
        """A provider charged to a member's one-time grant (its token), on this one's connection pool, as `for_user`."""
        return WattfareModelProvider(grant=grant, openai_client=self._client)

    def get_model(self, model_name: str | None) -> OpenAIChatCompletionsModel:
        """The Chat Completions model `model_name` (a Wattfare model id), charged to this provider's user.

        Raises:
            wattfare.UsageError: No model name: the SDK's default (an OpenAI model name without its vendor
                prefix) is not a Wattfare model id, so name one on the agent or the run.
        """
        if not model_name:
            raise UsageError("name the model, as a Wattfare model id: Agent(model='openai/gpt-4o-mini', ...)")
        return OpenAIChatCompletionsModel(model=model_name, openai_client=self._client)

    async def aclose(self) -> None:
        """Close the connection pool this provider opened (not an `openai_client` or `http_client` passed in)."""
        if self._owned is not None:
            await self._owned.close()


def wattfare_model(
    model: str,
    *,
    user_id: str | None = None,
    grant: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    openai_client: AsyncOpenAI | None = None,
) -> OpenAIChatCompletionsModel:
    """The Chat Completions model `model` (a Wattfare model id) charged to `user_id` or `grant`, for `Agent(model=...)`.

    A shorthand for `WattfareModelProvider(user_id=..., ...).get_model(model)`: each call without `openai_client`
    opens a connection pool of its own, so for many users prefer one provider and `for_user`.

        >>> from agents import Agent
        >>> model = wattfare_model("openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP
        >>> agent = Agent(name="Assistant", model=model)  # doctest: +SKIP

    Args:
        model: The Wattfare model id.
        user_id: The end user who pays.
        grant: Instead of a user, a member's one-time grant token.
        api_key: The app's secret key; defaults to `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server; defaults to `WATTFARE_BASE_URL`, then `http://127.0.0.1:8787`.
        openai_client: An `AsyncOpenAI` already pointed at Wattfare, instead of `api_key` and `base_url`.

    Raises:
        wattfare.UsageError: Not exactly one of `user_id` and `grant` is given (or see `WattfareModelProvider`).
    """
    if user_id is None and grant is None:
        raise UsageError("name who pays: user_id=... (your app's user) or grant=... (a member's one-time grant)")
    provider = WattfareModelProvider(
        user_id=user_id, grant=grant, api_key=api_key, base_url=base_url, openai_client=openai_client
    )
    return provider.get_model(model)


def _identity(user_id: str | None, grant: str | None) -> Mapping[str, str] | None:
    """The header naming who pays, with the other payer header omitted (a copy keeps its source's headers)."""
    headers = payer_headers(user_id=user_id, grant=grant)
    if headers is None:
        return None
    # openai drops an `Omit` header: a provider `for_user` copies may name the other payer, and the server refuses
    # a request naming both.
    omitted: dict[str, str | Omit] = {name: Omit() for name in PAYER_HEADERS if name not in headers}
    return cast("Mapping[str, str]", {**omitted, **headers})
