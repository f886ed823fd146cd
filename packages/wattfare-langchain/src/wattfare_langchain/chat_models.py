"""`ChatWattfare`: a LangChain chat model whose every call is charged to one of your app's users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Self, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.runnables.retry import ExponentialJitterParams
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import AliasChoices, ConfigDict, Field, SecretStr, model_validator
from typing_extensions import override

from wattfare import (
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    UsageError,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)
from wattfare_langchain._arguments import accepted_names, check_arguments, check_request_fields
from wattfare_langchain._connections import POOL, ClientSettings
from wattfare_langchain._convert import ChunkConverter, chat_result, to_openai_messages, tool_choice_param
from wattfare_langchain._payer import async_payer, check_non_empty, check_one_payer, grant_fingerprint, sync_payer
from wattfare_langchain._retry import RetryOn, retry_predicate
from wattfare_langchain._structured import structured_output
from wattfare_langchain._tokens import count_messages, token_ids

__all__ = ["ChatWattfare"]

_SECRET_KEY_ENV = "WATTFARE_SECRET_KEY"  # noqa: S105  (a variable name, not a secret)
_BASE_URL_ENV = "WATTFARE_BASE_URL"
# Sampling fields sent when set; anything else goes through `model_kwargs` or per-call kwargs.
_SAMPLING = (
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "n",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
)
# Call kwargs LangChain adds for tracing or streaming; none of them belongs in the request body.
_NOT_SENT = ("stream", "ls_structured_output_format", "structured_output_format")


class ChatWattfare(BaseChatModel):
    """A LangChain chat model served by Wattfare and paid from one app user's budget.

    A drop-in for `ChatOpenAI`: `ChatOpenAI(model="gpt-4o")` becomes
    `ChatWattfare(model="openai/gpt-4o", user_id=user.id)`, and invoke, stream, batch, tools,
    structured output and callbacks work as before, sync and async. Every request goes through the
    Wattfare core client, metered against the user's monthly cap.

    Errors are Wattfare's own typed exceptions, unchanged: catch `wattfare.NotConnectedError` to show
    the "Connect AI budget" button, `wattfare.BudgetExceededError` to show the user's usage. An answer
    Wattfare shortened because the cap is nearly used says so: `response_metadata["wattfare"]["clamped"]`.

    Args:
        model: A Wattfare model id, such as `"openai/gpt-4o-mini"` or `"anthropic/claude-sonnet-4"`.
        user_id: Your app's id for the user who pays; see `for_user` for one model shared by many users.
        grant: Instead of a user, a member's one-time grant token (`wfg_…`, sent as `Wattfare-Grant`): the
            grant's requests pay, and once it is spent a call raises `wattfare.GrantInvalidError`; see `for_grant`.
        secret_key: Your app's secret key (alias `api_key`, or `ChatOpenAI`'s `openai_api_key`); defaults to
            `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server (alias `openai_api_base`); defaults to `WATTFARE_BASE_URL`, then the core
            client's default.
        timeout: Seconds per request (per read for a stream; alias `request_timeout`); the core client's default
            when None.
        max_retries: Retries of connection errors, timeouts, 429s (a busy budget, `wattfare.BudgetBusyError`,
            included) and 5xx; a 402 is never retried.

    Raises:
        wattfare.UsageError: No secret key was given and `WATTFARE_SECRET_KEY` is unset; both `user_id` and `grant`
            were given; or an argument is unknown, or one of `ChatOpenAI`'s that means nothing here
            (`openai_organization`, `openai_proxy`, `default_headers`, `http_client`, ...): the message says what to
            do instead. Unknown arguments are never sent: request fields go in `model_kwargs` or `extra_body`.

    Example:
        >>> from wattfare_langchain import ChatWattfare
        >>> llm = ChatWattfare(model="openai/gpt-4o-mini", user_id="user_42", secret_key="sk_test_123")
        >>> llm.for_user("user_43").user_id
        'user_43'
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_name: str = Field(alias="model")
    """The Wattfare model id (`model=` in the constructor)."""
    user_id: str | None = None
    """Your app's id for the user charged; this or `grant` is required by the time a request is sent."""
    grant: str | None = Field(default=None, repr=False, exclude=True)
    """A member's one-time grant token, charged instead of a user; never shown in a repr, a dump or a trace."""
    secret_key: SecretStr | None = Field(
        default_factory=secret_from_env(_SECRET_KEY_ENV, default=None),
        validation_alias=AliasChoices("secret_key", "api_key", "openai_api_key"),
    )
    """Your app's secret key (`sk_test_…` / `sk_live_…`); `api_key=` or `openai_api_key=` in the constructor too."""
    base_url: str | None = Field(
        default_factory=from_env(_BASE_URL_ENV, default=None),
        validation_alias=AliasChoices("base_url", "openai_api_base"),
    )
    """The Wattfare server (its root, or its `/api/v1`); `openai_api_base=` in the constructor too."""
    timeout: float | None = Field(default=None, validation_alias=AliasChoices("timeout", "request_timeout"))
    """Seconds per request (per read for a stream); `request_timeout=` in the constructor too."""
    max_retries: int = 2
    """Retries of what a retry can fix, done by the core client; never a 402."""
    temperature: float | None = None
    """Sampling temperature."""
    max_tokens: int | None = Field(default=None, validation_alias=AliasChoices("max_tokens", "max_completion_tokens"))
    """The most tokens to generate (alias `max_completion_tokens`); Wattfare lowers it to what the budget affords."""
    top_p: float | None = None
    """Nucleus sampling."""
    frequency_penalty: float | None = None
    """Penalty for repeated tokens, by frequency."""
    presence_penalty: float | None = None
    """Penalty for repeated tokens, by presence."""
    seed: int | None = None
    """Sampling seed, for models that honour one."""
    n: int | None = None
    """How many choices to generate (one generation each)."""
    logprobs: bool | None = None
    """Whether to return log probabilities (in `response_metadata["logprobs"]`)."""
    top_logprobs: int | None = None
    """How many most likely tokens to return per position with `logprobs`."""
    reasoning_effort: str | None = None
    """How hard a reasoning model thinks (`"low"`, `"medium"`, `"high"`), for models that take it."""
    stop: list[str] | None = Field(default=None, validation_alias=AliasChoices("stop", "stop_sequences"))
    """Stop sequences, for every call (`stop_sequences=` in the constructor too)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other OpenAI request fields, sent as given (never client settings such as `api_key` or `timeout`)."""
    extra_body: dict[str, Any] | None = None
    """More request fields, sent as given after everything else (as `ChatOpenAI`'s `extra_body`)."""
    streaming: bool = False
    """Whether `invoke` streams under the hood (callbacks then get each token)."""
    stream_usage: bool = True
    """Accepted for `ChatOpenAI` compatibility: Wattfare meters every stream, so it always reports usage."""
    client: Wattfare | None = Field(default=None, exclude=True)
    """A core client to send sync calls through instead of the shared one built from the settings above."""
    async_client: AsyncWattfare | None = Field(default=None, exclude=True)
    """A core client to send async calls through instead of the shared one built from the settings above."""

    @model_validator(mode="before")
    @classmethod
    def _check_arguments(cls, data: object) -> object:
        # Unlike ChatOpenAI, nothing unknown becomes a request field: see _arguments.
        if not isinstance(data, dict):
            return data
        return check_arguments(cast(dict[str, Any], data), accepted_names(cls))

    @model_validator(mode="after")
    def _require_secret_key(self) -> Self:
        if self.secret_key is None and self.client is None and self.async_client is None:
            raise UsageError(f"no secret key: pass secret_key=... (or api_key=...) or set {_SECRET_KEY_ENV}")
        return self

    @model_validator(mode="after")
    def _one_payer(self) -> Self:
        check_one_payer("ChatWattfare", self.user_id, self.grant)
        return self

    # ------------------------------------------------------------ identity

    @property
    @override
    def _llm_type(self) -> str:
        return "wattfare-chat"

    @property
    def _default_params(self) -> dict[str, Any]:
        params = dict(self.model_kwargs)
        for name in _SAMPLING:
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        return params | (self.extra_body or {})

    @property
    @override
    def _identifying_params(self) -> dict[str, Any]:
        # Who pays is part of a call's identity: an LLM cache must never serve one user's answer to another.
        payer = {"grant": grant_fingerprint(self.grant)} if self.grant is not None else {}
        return {"model_name": self.model_name, "user_id": self.user_id, **payer, **self._default_params}

    @override
    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="wattfare",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop or kwargs.get("stop") or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # ------------------------------------------------------------ users and connections

    def for_user(self, user_id: str) -> Self:
        """A copy of this model charged to another user; cheap, and it shares this model's connections.

        Build one `ChatWattfare` at startup and call this per request.

        Raises:
            wattfare.UsageError: `user_id` is not a non-empty string.
        """
        return self.model_copy(update={"user_id": check_non_empty("user_id", user_id), "grant": None})

    def for_grant(self, grant: str) -> Self:
        """A copy of this model charged to a member's one-time grant (its token) instead of a user; cheap.

        Raises:
            wattfare.UsageError: `grant` is not a non-empty string.
        """
        return self.model_copy(update={"grant": check_non_empty("grant", grant), "user_id": None})

    def close(self) -> None:
        """Close the shared sync connection pool this model uses (a `client` you passed in stays yours to close).

        The pool is shared with every model of the same key, server, timeout and retries; the next call opens a
        new one.
        """
        if self.client is None:
            POOL.close(self._settings())

    async def aclose(self) -> None:
        """Close the running event loop's shared connection pool this model uses; see `close`."""
        if self.async_client is None:
            await POOL.aclose(self._settings())

    def _settings(self) -> ClientSettings:
        key = self.secret_key.get_secret_value() if self.secret_key is not None else None
        return ClientSettings(key, self.base_url, self.timeout, self.max_retries)

    def _sync_payer(self) -> WattfareUser | WattfareGrant:
        client = self.client if self.client is not None else POOL.sync_client(self._settings())
        return sync_payer("ChatWattfare", client, self.user_id, self.grant)

    def _async_payer(self) -> AsyncWattfareUser | AsyncWattfareGrant:
        client = self.async_client if self.async_client is not None else POOL.async_client(self._settings())
        return async_payer("ChatWattfare", client, self.user_id, self.grant)

    def _request(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The model id and the request fields of one call: defaults, then the call's kwargs."""
        check_request_fields(kwargs, "the call's arguments")
        params = {**self._default_params, **kwargs}
        for name in _NOT_SENT:
            params.pop(name, None)
        model = params.pop("model", None) or self.model_name
        stops = stop if stop is not None else params.pop("stop", None) or self.stop
        if stops:
            params["stop"] = list(stops)
        return model, params

    # ------------------------------------------------------------ generation

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, params = self._request(stop, kwargs)
        completion = self._sync_payer().chat(model=model, messages=to_openai_messages(messages), **params)
        return chat_result(completion)

    @override
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, params = self._request(stop, kwargs)
        completion = await self._async_payer().chat(model=model, messages=to_openai_messages(messages), **params)
        return chat_result(completion)

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, params = self._request(stop, kwargs)
        converter = ChunkConverter()
        # LangChain reports each yielded chunk to the callbacks itself (on_llm_new_token).
        with self._sync_payer().stream(model=model, messages=to_openai_messages(messages), **params) as stream:
            for chunk in stream:
                converted = converter.convert(chunk)
                if converted is not None:
                    yield converted
            yield converter.last(stream)

    @override
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, params = self._request(stop, kwargs)
        converter = ChunkConverter()
        payer = self._async_payer()
        async with payer.stream(model=model, messages=to_openai_messages(messages), **params) as stream:
            async for chunk in stream:
                converted = converter.convert(chunk)
                if converted is not None:
                    yield converted
            yield converter.last(stream)

    # ------------------------------------------------------------ token counting

    @override
    def get_token_ids(self, text: str) -> list[int]:
        """The tiktoken ids of `text` in the model's encoding, or `custom_get_token_ids(text)` when set.

        OpenAI models (`"openai/gpt-4o"`, `"openai/o3"`, `"openai/gpt-4"`) use their own encoding, so counts
        are exact; other families (`"anthropic/…"`, `"google/…"`, ...) are approximated with `o200k_base`.
        No `transformers` needed. tiktoken downloads an encoding on first use and caches it: offline, set
        `TIKTOKEN_CACHE_DIR` to a directory that holds it.
        """
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        return token_ids(self.model_name, text)

    @override
    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """The prompt tokens of `messages`, counted as `ChatOpenAI` counts them (see `get_token_ids`).

        Messages are framed as on OpenAI's chat wire (3 tokens each, 3 more priming the reply). Estimates:
        an image counts as a low-detail one (85 tokens; its size is not fetched), audio and file parts as
        nothing, and `tools` as their JSON schemas' text.
        """
        return count_messages(messages, tools, self.get_num_tokens)

    # ------------------------------------------------------------ tools, structured output, retries

    @override
    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: Mapping[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, pydantic models, `BaseTool`s or OpenAI tool dicts) to every call.

        Args:
            tools: The tools the model may call.
            tool_choice: `"auto"`, `"none"`, `"any"`/`"required"` (some tool), a tool's name (that
                tool), True (the only tool), or None (the model decides).
            strict: Ask the model to follow the tools' schemas exactly, where it can.
            parallel_tool_calls: Whether the model may call several tools in one turn.
            **kwargs: Other request fields to bind.

        Raises:
            ValueError: `tool_choice` names no bound tool.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        choice = tool_choice_param(tool_choice, [tool["function"]["name"] for tool in formatted])
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    @override
    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers in `schema`: a pydantic model instance, or a dict for a TypedDict or JSON schema.

        Args:
            schema: A pydantic model, a TypedDict, a JSON schema, or an OpenAI function/tool dict.
            include_raw: Return `{"raw": AIMessage, "parsed": ..., "parsing_error": ...}` instead,
                so a parsing failure is a value rather than an exception.
            method: `"function_calling"` (a forced tool call, the most widely supported), `"json_schema"`
                (the `json_schema` response format) or `"json_mode"` (`json_object`; name the keys in the prompt).
            strict: Ask the model to follow the schema exactly, where it can.
            **kwargs: Not supported; present for LangChain's signature.

        Raises:
            ValueError: An unknown `method` or keyword argument.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
        return structured_output(self, schema, method=method, strict=strict, include_raw=include_raw)

    @override
    def with_retry(
        self,
        *,
        retry_if_exception_type: RetryOn = (Exception,),
        wait_exponential_jitter: bool = True,
        exponential_jitter_params: ExponentialJitterParams | None = None,
        stop_after_attempt: int = 3,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """LangChain's `with_retry`, except that it never retries what a retry cannot fix.

        A spent cap or a missing connection (`wattfare.PaymentRequiredError`), a bad key, a bad
        request, an unknown model and programmer mistakes are raised at once, whatever
        `retry_if_exception_type` says.
        """
        return super().with_retry(
            retry_if_exception_type=retry_predicate(retry_if_exception_type),
            wait_exponential_jitter=wait_exponential_jitter,
            exponential_jitter_params=exponential_jitter_params,
            stop_after_attempt=stop_after_attempt,
        )
