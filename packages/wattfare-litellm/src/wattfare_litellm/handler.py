"""`WattfareLLM`, the LiteLLM custom provider behind `wattfare/<model>`, and its default instance.

Every request goes through the Wattfare SDK (`wattfare.Wattfare` / `wattfare.AsyncWattfare`), so
retries, typed errors and usage parsing are the SDK's. The handler keeps one `httpx` connection
pool per process (and one per event loop for async calls) and builds the cheap SDK client for
each call from the deployment's `api_key` / `api_base`, so one handler serves any number of
Router deployments and end users.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
from litellm.exceptions import AuthenticationError, UnsupportedEndpointError
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import EmbeddingResponse, GenericStreamingChunk, ModelResponse

from wattfare import (
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    UsageError,
    Wattfare,
    WattfareError,
    WattfareGrant,
    WattfareUser,
)
from wattfare_litellm._call import ChatCall, ClientSettings, EmbeddingCall, read_call, read_embedding_call
from wattfare_litellm._chunks import ChunkTranslator
from wattfare_litellm._embedding_params import route_embedding_params
from wattfare_litellm._error_mapping import PROVIDER, litellm_error
from wattfare_litellm._response import embedding_response
from wattfare_litellm._response import model_response as to_model_response
from wattfare_litellm._sync_stream import SyncChunks

__all__ = ["WattfareLLM", "wattfare_llm"]


class WattfareLLM(CustomLLM):
    """The `wattfare/<model>` provider for LiteLLM: completions and embeddings charged to your app's end users.

    Register it once with `wattfare_litellm.register()` (or `custom_provider_map` in the proxy's
    `config.yaml`), then call `litellm.completion(model="wattfare/openai/gpt-4o-mini",
    messages=..., user="user_42")`. The deployment's `api_key` is the app's Wattfare secret key and
    its `api_base` the Wattfare server; without them the SDK reads `WATTFARE_SECRET_KEY` and
    `WATTFARE_BASE_URL`. The end user is LiteLLM's standard `user` param; a member's one-time grant pays instead
    with `wattfare_grant=<grant token>` (or the `Wattfare-Grant` header in `extra_headers`). Embeddings too:
    `litellm.embedding(model="wattfare/openai/text-embedding-3-small", input=[...], user="user_42")`.

    Args:
        secret_key: The secret key used when a call names none (`api_key`).
        base_url: The Wattfare server used when a call names none (`api_base`).
        timeout: Seconds per request when LiteLLM passes no timeout.
        max_retries: The SDK's retries (connection errors, 408/409/429/5xx, a busy budget included; never a
            402) when LiteLLM passes no `max_retries`. A Router passes 0: it retries itself, except a busy
            budget, which the SDK retries as many times as the Router would (its `num_retries`).
        http_client: An `httpx.Client` for every sync call (proxies, custom transports); the caller closes it.
        async_http_client: An `httpx.AsyncClient` for every async call, used from one event loop;
            the caller closes it. Without it, the handler keeps one per event loop (`aclose`).
    """

    def __init__(
        self,
        *,
        secret_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__()
        self._secret_key = secret_key
        self._base_url = base_url
        self._timeout = timeout
        self._max_retries = max_retries
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._owned_http: httpx.Client | None = None
        self._owned_async_http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        # LiteLLM hands a custom provider no embedding params unless told to (see _embedding_params).
        route_embedding_params(WattfareLLM)

    def __repr__(self) -> str:
        return f"<WattfareLLM base_url={self._base_url!r}>"

    # ------------------------------------------------------------ LiteLLM's four chat hooks

    def completion(
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: Any = None,
    ) -> ModelResponse:
        """A chat completion charged to the call's `user` (LiteLLM calls this)."""
        call = read_call(
            model=model,
            messages=messages,
            optional_params=optional_params,
            logging_obj=logging_obj,
            headers=headers,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            stream=False,
            litellm_params=litellm_params,
        )
        wf = self._client(call)
        try:
            completion = _payer(wf, call).chat(model=call.model, messages=call.messages, **call.params)
        except WattfareError as exc:
            raise litellm_error(exc, model=call.model, app_user_id=call.app_user_id) from exc
        return to_model_response(completion, model_response)

    def streaming(
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: Any = None,
    ) -> Iterator[GenericStreamingChunk]:
        """A streamed completion; the request is sent here, so a refusal raises before any chunk."""
        call = read_call(
            model=model,
            messages=messages,
            optional_params=optional_params,
            logging_obj=logging_obj,
            headers=headers,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            stream=True,
            litellm_params=litellm_params,
        )
        wf = self._client(call)

        def fail(exc: WattfareError) -> Exception:
            return litellm_error(exc, model=call.model, app_user_id=call.app_user_id)

        stack = ExitStack()
        try:
            stream = stack.enter_context(
                _payer(wf, call).stream(model=call.model, messages=call.messages, **call.params)
            )
        except WattfareError as exc:
            stack.close()
            raise fail(exc) from exc
        return SyncChunks(stack, stream, fail)

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109  (LiteLLM's signature)
        client: Any = None,
    ) -> ModelResponse:
        """The async twin of `completion`."""
        call = read_call(
            model=model,
            messages=messages,
            optional_params=optional_params,
            logging_obj=logging_obj,
            headers=headers,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            stream=False,
            litellm_params=litellm_params,
        )
        wf = self._async_client(call)
        try:
            completion = await _apayer(wf, call).chat(model=call.model, messages=call.messages, **call.params)
        except WattfareError as exc:
            raise litellm_error(exc, model=call.model, app_user_id=call.app_user_id) from exc
        return to_model_response(completion, model_response)

    async def astreaming(  # pyright: ignore[reportIncompatibleMethodOverride]  (LiteLLM iterates an async generator)
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109  (LiteLLM's signature)
        client: Any = None,
    ) -> AsyncIterator[GenericStreamingChunk]:
        """The async twin of `streaming`; LiteLLM wants an async generator: the request goes out on the first read."""
        call = read_call(
            model=model,
            messages=messages,
            optional_params=optional_params,
            logging_obj=logging_obj,
            headers=headers,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            stream=True,
            litellm_params=litellm_params,
        )
        wf = self._async_client(call)
        translator = ChunkTranslator()
        try:
            async with _apayer(wf, call).stream(model=call.model, messages=call.messages, **call.params) as s:
                async for chunk in s:
                    for generic in translator.translate(chunk):
                        yield generic
                final = translator.final(s)
        except WattfareError as exc:
            raise litellm_error(exc, model=call.model, app_user_id=call.app_user_id) from exc
        yield final

    # ------------------------------------------------------------ LiteLLM's two embedding hooks

    def embedding(
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        print_verbose: Callable[..., Any],
        logging_obj: Any,
        optional_params: dict[str, Any],
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        litellm_params: Any = None,
    ) -> EmbeddingResponse:
        """Embeddings charged to the call's `user` (`litellm.embedding` calls this)."""
        call = read_embedding_call(
            model=model,
            input=input,
            optional_params=optional_params,
            logging_obj=logging_obj,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            litellm_params=litellm_params,
        )
        wf = self._client(call)
        try:
            result = _payer(wf, call).embed(
                model=call.model,
                input=call.input,
                dimensions=call.dimensions,
                encoding_format=call.encoding_format,
                extra_body=call.extra_body,
            )
        except WattfareError as exc:
            raise litellm_error(exc, model=call.model, app_user_id=call.app_user_id) from exc
        return embedding_response(result, model_response)

    async def aembedding(
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        print_verbose: Callable[..., Any],
        logging_obj: Any,
        optional_params: dict[str, Any],
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109  (LiteLLM's signature)
        litellm_params: Any = None,
    ) -> EmbeddingResponse:
        """The async twin of `embedding` (`litellm.aembedding` calls this)."""
        call = read_embedding_call(
            model=model,
            input=input,
            optional_params=optional_params,
            logging_obj=logging_obj,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            litellm_params=litellm_params,
        )
        wf = self._async_client(call)
        try:
            result = await _apayer(wf, call).embed(
                model=call.model,
                input=call.input,
                dimensions=call.dimensions,
                encoding_format=call.encoding_format,
                extra_body=call.extra_body,
            )
        except WattfareError as exc:
            raise litellm_error(exc, model=call.model, app_user_id=call.app_user_id) from exc
        return embedding_response(result, model_response)

    # ------------------------------------------------------------ what Wattfare does not serve

    def image_generation(self, model: str, *args: Any, **kwargs: Any) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        """Not served: Wattfare meters chat completions and embeddings only."""
        raise _unsupported("image generation", model)

    async def aimage_generation(self, model: str, *args: Any, **kwargs: Any) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        """Not served: Wattfare meters chat completions and embeddings only."""
        raise _unsupported("image generation", model)

    # ------------------------------------------------------------ clients and their pools

    def close(self) -> None:
        """Close the sync connection pool this handler opened (not an `http_client` passed in)."""
        with self._lock:
            owned, self._owned_http = self._owned_http, None
        if owned is not None:
            owned.close()

    async def aclose(self) -> None:
        """Close the async connection pool this handler opened for the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            owned = self._owned_async_http.pop(loop, None)
        if owned is not None:
            await owned.aclose()

    def _options(self, settings: ClientSettings) -> dict[str, Any]:
        timeout = settings.timeout if settings.timeout is not None else self._timeout
        return {
            "secret_key": settings.secret_key or self._secret_key,
            "base_url": settings.base_url or self._base_url,
            "max_retries": settings.max_retries if settings.max_retries is not None else self._max_retries,
            "busy_retries": settings.busy_retries,
            **({"timeout": timeout} if timeout is not None else {}),
        }

    def _client(self, call: ChatCall | EmbeddingCall) -> Wattfare:
        try:
            return Wattfare(**self._options(call.client), http_client=self._sync_http())
        except UsageError as exc:
            raise _misconfigured(exc, call.model) from exc

    def _async_client(self, call: ChatCall | EmbeddingCall) -> AsyncWattfare:
        try:
            return AsyncWattfare(**self._options(call.client), http_client=self._async_http())
        except UsageError as exc:
            raise _misconfigured(exc, call.model) from exc

    def _sync_http(self) -> httpx.Client:
        if self._http_client is not None:
            return self._http_client
        with self._lock:
            if self._owned_http is None or self._owned_http.is_closed:
                self._owned_http = httpx.Client()
            return self._owned_http

    def _async_http(self) -> httpx.AsyncClient:
        if self._async_http_client is not None:
            return self._async_http_client
        # An httpx.AsyncClient's connections belong to the loop that opened them: one pool per loop.
        loop = asyncio.get_running_loop()
        with self._lock:
            owned = self._owned_async_http.get(loop)
            if owned is None or owned.is_closed:
                owned = self._owned_async_http[loop] = httpx.AsyncClient()
            return owned


def _payer(wf: Wattfare, call: ChatCall | EmbeddingCall) -> WattfareUser | WattfareGrant:
    # `read_call` named exactly one of the two.
    return wf.grant(call.grant) if call.grant is not None else wf.user(call.app_user_id or "")


def _apayer(wf: AsyncWattfare, call: ChatCall | EmbeddingCall) -> AsyncWattfareUser | AsyncWattfareGrant:
    return wf.grant(call.grant) if call.grant is not None else wf.user(call.app_user_id or "")


def _misconfigured(exc: UsageError, model: str) -> Exception:
    # A missing or malformed secret key or base URL breaks the deployment for everyone: LiteLLM's
    # AuthenticationError makes a Router cool it down and try another.
    return AuthenticationError(
        message=f"the Wattfare deployment is misconfigured: {exc}", llm_provider=PROVIDER, model=model
    )


def _unsupported(what: str, model: str) -> Exception:
    return UnsupportedEndpointError(  # pyright: ignore[reportUnknownMemberType]
        message=f"Wattfare serves chat completions and embeddings only, not {what}", model=model, llm_provider=PROVIDER
    )


wattfare_llm = WattfareLLM()
"""The default handler: what `register()` installs and what a proxy `config.yaml` names as
`custom_handler: wattfare_litellm.wattfare_llm`."""
