"""The asynchronous client: `AsyncWattfare` and its user, grant and model handles (streams: `_async_stream`).

Mirrors `_sync.py` name for name (`close` is `aclose`, as in httpx); everything that is not
sending, sleeping or reading lives in `_core.py` and `_streaming.py`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from wattfare._client import _core, _grants, _retries, _usage_report
from wattfare._client._async_stream import AsyncChatStream
from wattfare._client._core import EmbeddingInput, EncodingFormat, MessageParam, RequestSpec
from wattfare._exceptions import UsageError, error_from_response
from wattfare._types import (
    ChatCompletion,
    ConnectionStatus,
    CreatedGrant,
    CreatedSession,
    EmbeddingResponse,
    GrantStatus,
    ModelInfo,
    UsageReport,
)

__all__ = ["AsyncChatStream", "AsyncModelHandle", "AsyncWattfare", "AsyncWattfareGrant", "AsyncWattfareUser"]


class AsyncWattfare:
    """The asynchronous Wattfare client, for an app's backend. Construct once and reuse: it holds a connection pool.

    Args:
        secret_key: The app's secret key (`sk_test_…` / `sk_live_…`); defaults to `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server; defaults to `WATTFARE_BASE_URL`, then `http://127.0.0.1:8787`
            (`wattfare dev`).
        timeout: Seconds per request (or an `httpx.Timeout`); for a stream, per read.
        max_retries: Retries of connection errors, timeouts and 408/409/429/5xx (a `budget_busy` refusal
            included); never of a 402.
        busy_retries: Retries of a `budget_busy` refusal (the user's other requests in flight hold the budget),
            when they must differ from `max_retries`: for a caller that retries everything else itself but
            cannot retry a busy user, such as LiteLLM's Router. None: `max_retries`.
        http_client: An `httpx.AsyncClient` to send through (proxies, custom transports); the caller closes it.

    Raises:
        UsageError: The secret key is missing or does not start with `sk_`, or an argument is invalid.

    Example:
        >>> wf = AsyncWattfare(secret_key="sk_test_123")
        >>> wf.user("user_42").model("openai/gpt-4o-mini")  # doctest: +ELLIPSIS
        <AsyncModelHandle ...>
    """

    def __init__(
        self,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 2,
        busy_retries: int | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = _core.resolve_config(
            secret_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            busy_retries=busy_retries,
            environ=os.environ,
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise UsageError(f"http_client must be an httpx.AsyncClient, got {type(http_client).__name__}")
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()
        self._retry = _retries.RetryPolicy(self._config.max_retries, self._config.busy_retries)
        # Seams for tests (and for callers that want different randomness or waiting).
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep
        self._random: Callable[[], float] = random.random
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __repr__(self) -> str:
        return f"<AsyncWattfare api_url={self._config.api_url!r}>"

    async def create_session(
        self, app_user_id: str, *, monthly_usd: Decimal | int | str | None = None
    ) -> CreatedSession:
        """Mint a session token for the consent popup of one app user (`POST /sessions`).

        Args:
            app_user_id: The app's own id for the user.
            monthly_usd: A suggested monthly cap in USD; the user may change it.
        """
        return _core.parse(CreatedSession, await self._send(_core.session_request(app_user_id, monthly_usd)))

    async def create_test_grant(
        self, requests: int, *, max_usd: Decimal | int | str | None = None, expires_in_seconds: int | None = None
    ) -> CreatedGrant:
        """Mint a one-time grant without a member's approval (`POST /grants`): test keys only, for tests and demos.

        A live grant needs the member's approval in the browser (`wattfare.requestGrant`); a live key gets a
        `BadRequestError` here.

        Args:
            requests: How many requests the grant allows (the server takes 1 to 1000).
            max_usd: The most the grant may spend, in USD (never a float); no dollar cap when None.
            expires_in_seconds: The grant's lifetime (the server takes 60 to 86400); the server's default (an
                hour) when None.

        Returns:
            The grant: pass `grant_token` to `grant()`.
        """
        spec = _grants.create_grant_request(requests, max_usd, expires_in_seconds)
        return _core.parse(CreatedGrant, await self._send(spec))

    async def models(self) -> list[ModelInfo]:
        """The models Wattfare serves, with their prices (`GET /models`)."""
        return _core.parse_models(await self._send(_core.models_request()))

    async def usage(
        self,
        app_user_id: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> UsageReport:
        """Spend per user and model (`GET /usage`).

        The whole app's report comes from the server in pages of app users: with neither `limit` nor `after`,
        every page is read and joined into one report; with either, one page is returned, and its
        `next_after` is the `after` of the next while `has_more`.

        Args:
            app_user_id: Only this user; all of the app's users when None.
            start: The first day (UTC) included; the server's default when None.
            end: The last day (UTC) included; the server's default when None.
            limit: App users on the page (1 to 1,000; the server's default, 100, when only `after` is given).
            after: The previous page's `next_after`.
        """
        if not _usage_report.follows_pages(app_user_id, limit, after):
            spec = _usage_report.usage_request(app_user_id, start, end, limit=limit, after=after)
            return _core.parse(UsageReport, await self._send(spec))
        report = None
        while report is None or report.has_more:
            cursor = None if report is None else report.next_after
            spec = _usage_report.usage_request(None, start, end, limit=_usage_report.USAGE_PAGE_USERS, after=cursor)
            page = _core.parse(UsageReport, await self._send(spec))
            report = page if report is None else _usage_report.with_next_page(report, page)
        return report

    def user(self, app_user_id: str) -> AsyncWattfareUser:
        """A handle for one app user; cheap, and shares this client's connection pool."""
        return AsyncWattfareUser(self, app_user_id)

    def grant(self, token: str) -> AsyncWattfareGrant:
        """A handle for one one-time grant (its token, `wfg_…`); cheap, and shares this client's connection pool.

        Raises:
            UsageError: `token` is not a non-empty printable ASCII str.
        """
        return AsyncWattfareGrant(self, token)

    async def aclose(self) -> None:
        """Close the connection pool (not an `http_client` the caller passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, spec: RequestSpec) -> httpx.Response:
        """Send with retries; return a success response (streamed bodies unread) or raise the typed error."""
        request = _core.build_request(self._http, self._config, spec)
        retries = 0
        while True:
            try:
                response = await self._http.send(request, stream=spec.stream)
            except httpx.RequestError as exc:
                wait = self._retry.after_transport_error(retries, jitter=self._random())
                if wait is None or not isinstance(exc, httpx.TransportError):
                    raise _retries.connection_error(exc) from exc
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                except httpx.RequestError as exc:
                    await response.aclose()
                    wait = self._retry.after_transport_error(retries, jitter=self._random())
                    if wait is None:
                        raise _retries.connection_error(exc) from exc
                else:
                    wait = self._retry.after_status(retries, response, now=self._now(), jitter=self._random())
                    if wait is None:
                        raise error_from_response(response.status_code, response.headers, response.content)
            await self._sleep(wait)
            retries += 1


class _Charged:
    """What a user's handle and a grant's share: completions and embeddings, charged to the one who pays.

    Exactly one of `app_user_id` (sent as `Wattfare-User`) and `grant` (sent as `Wattfare-Grant`) is set.
    """

    def __init__(self, client: AsyncWattfare, *, app_user_id: str | None = None, grant: str | None = None) -> None:
        self._client = client
        self._charged_user = app_user_id
        self._charged_grant = grant

    async def chat(self, *, model: str, messages: Iterable[MessageParam], **params: Any) -> ChatCompletion:
        """A chat completion charged here (the user's budget, or the grant); `params` pass through verbatim.

        Returns:
            The OpenAI completion, with the cost, the budget left and the request id on `.wattfare`.
        """
        spec = _core.chat_request(self._charged_user, model, messages, params, stream=False, grant=self._charged_grant)
        return _core.parse_completion(await self._client._send(spec))  # pyright: ignore[reportPrivateUsage]

    def stream(self, *, model: str, messages: Iterable[MessageParam], **params: Any) -> AsyncChatStream:
        """A streamed chat completion charged here (the user's budget, or the grant); use it as a context manager.

        Example:
            >>> async with user.stream(model="openai/gpt-4o-mini", messages=msgs) as s:  # doctest: +SKIP
            ...     async for text in s.text_stream:
            ...         print(text, end="")
        """
        spec = _core.chat_request(self._charged_user, model, messages, params, stream=True, grant=self._charged_grant)
        return AsyncChatStream(self._client, spec)

    async def embed(
        self,
        *,
        model: str,
        input: EmbeddingInput,
        dimensions: int | None = None,
        encoding_format: EncodingFormat | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> EmbeddingResponse:
        """Embeddings of `input` charged here, the user's budget or the grant (`POST /embeddings`, OpenAI's wire).

        Args:
            model: An embedding model's id (`openai/text-embedding-3-small`).
            input: A text, a list of texts, a list of token ids, or a list of lists of token ids.
            dimensions: The size of each vector, for models that can shorten theirs.
            encoding_format: `"float"` or `"base64"`; each vector comes back as the server sent it (`vectors()`
                decodes base64 to floats). The model's default (floats) when None.
            extra_body: More request fields, sent as given after everything else.

        Returns:
            One `Embedding` per input, in `data` (by `index`), with the cost, the budget left and the request
            id on `.wattfare`.

        Raises:
            UsageError: An argument is malformed (nothing is sent).
        """
        spec = _core.embeddings_request(
            self._charged_user,
            model,
            input,
            dimensions=dimensions,
            encoding_format=encoding_format,
            extra_body=extra_body,
            grant=self._charged_grant,
        )
        return _core.parse_embeddings(await self._client._send(spec))  # pyright: ignore[reportPrivateUsage]


class AsyncWattfareUser(_Charged):
    """One app user: their connection, and completions and embeddings charged to their budget.

    Get one from `AsyncWattfare.user`.
    """

    def __init__(self, client: AsyncWattfare, app_user_id: str) -> None:
        self._app_user_id = _core.check_app_user_id(app_user_id)
        super().__init__(client, app_user_id=self._app_user_id)

    def __repr__(self) -> str:
        return f"<AsyncWattfareUser {self._app_user_id!r}>"

    @property
    def app_user_id(self) -> str:
        """The app's id for this user."""
        return self._app_user_id

    async def status(self) -> ConnectionStatus:
        """The user's connection and budget; `connected` is False (not an error) when they never connected."""
        return _core.parse(ConnectionStatus, await self._client._send(_core.status_request(self._app_user_id)))  # pyright: ignore[reportPrivateUsage]

    async def disconnect(self) -> None:
        """Revoke the user's connection to this app; spending stops at once, streams in flight included."""
        await self._client._send(_core.disconnect_request(self._app_user_id))  # pyright: ignore[reportPrivateUsage]

    def model(self, model: str) -> AsyncModelHandle:
        """A handle bound to this user and one model."""
        return AsyncModelHandle(self, model)


class AsyncWattfareGrant(_Charged):
    """One one-time grant: completions and embeddings charged to it (`Wattfare-Grant`, no app user), and its state.

    Get one from `AsyncWattfare.grant`. Once the grant is used up, expired, revoked or over its dollar cap, a
    request raises `GrantInvalidError` (never retried).
    """

    def __init__(self, client: AsyncWattfare, token: str) -> None:
        self._token = _grants.check_grant_token(token)
        super().__init__(client, grant=self._token)

    def __repr__(self) -> str:
        # The token is a credential: never in a repr, hence never in a log line or a traceback.
        return "<AsyncWattfareGrant>"

    async def status(self) -> GrantStatus:
        """The grant's state, the requests it has left and what it has spent (`GET /grants/current`).

        Raises:
            GrantInvalidError: The grant is unknown, or another app's.
        """
        spec = _grants.grant_status_request(self._token)
        return _core.parse(GrantStatus, await self._client._send(spec))  # pyright: ignore[reportPrivateUsage]


class AsyncModelHandle:
    """One model, charged to one user: `chat`, `stream` and `embed` without repeating either."""

    def __init__(self, user: AsyncWattfareUser, model: str) -> None:
        self._user = user
        self._model = model

    def __repr__(self) -> str:
        return f"<AsyncModelHandle {self._model!r} for {self._user.app_user_id!r}>"

    @property
    def model_id(self) -> str:
        """The model's id (`openai/gpt-4o-mini`)."""
        return self._model

    @property
    def user(self) -> AsyncWattfareUser:
        """The user charged."""
        return self._user

    async def chat(self, messages: Iterable[MessageParam], **params: Any) -> ChatCompletion:
        """A chat completion; see `AsyncWattfareUser.chat`."""
        return await self._user.chat(model=self._model, messages=messages, **params)

    def stream(self, messages: Iterable[MessageParam], **params: Any) -> AsyncChatStream:
        """A streamed chat completion; see `AsyncWattfareUser.stream`."""
        return self._user.stream(model=self._model, messages=messages, **params)

    async def embed(
        self,
        input: EmbeddingInput,
        *,
        dimensions: int | None = None,
        encoding_format: EncodingFormat | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> EmbeddingResponse:
        """Embeddings of `input`; see `AsyncWattfareUser.embed`."""
        return await self._user.embed(
            model=self._model,
            input=input,
            dimensions=dimensions,
            encoding_format=encoding_format,
            extra_body=extra_body,
        )
