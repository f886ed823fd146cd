"""`WattfareLLM`: a LlamaIndex function-calling LLM whose every call is paid from one end user's Wattfare budget."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import (
    llm_chat_callback,  # pyright: ignore[reportUnknownVariableType]
    llm_completion_callback,  # pyright: ignore[reportUnknownVariableType]
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from wattfare import AsyncWattfareGrant, AsyncWattfareUser, WattfareGrant, WattfareUser
from wattfare_llamaindex._arguments import check_request_fields, resolve_arguments
from wattfare_llamaindex._connection import Connection
from wattfare_llamaindex._messages import to_wire_messages
from wattfare_llamaindex._responses import StreamState, chat_response
from wattfare_llamaindex._tools import keep_first_tool_call, resolve_tool_choice, tool_selections, tool_specs

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["WattfareLLM"]

_F = TypeVar("_F", bound=Callable[..., Any])


# LlamaIndex's callback decorators fire its callbacks and instrumentation events; they are untyped, so these
# typed twins keep the decorated methods' signatures visible to type checkers.
def _chat_event(method: _F) -> _F:
    return cast(_F, llm_chat_callback()(method))


def _completion_event(method: _F) -> _F:
    return cast(_F, llm_completion_callback()(method))


class WattfareLLM(FunctionCallingLLM):
    """A LlamaIndex LLM served by Wattfare and charged to one of your app's users.

    A function-calling chat model, so `FunctionAgent`, `AgentWorkflow`, `ReActAgent`, query engines and
    structured output all work with it as with LlamaIndex's OpenAI LLM; the difference is who pays: every
    call is metered against `user_id`'s Wattfare budget. Requests go through the Wattfare SDK, so
    failures raise its typed errors unchanged (`NotConnectedError`: show your "Connect AI budget"
    button; `BudgetExceededError`: the cap is reached until `resets_at`), and a spent cap is never retried.

    Token usage and cost are on every response: `raw["usage"]`, `raw["wattfare"]`, and
    `additional_kwargs` (`prompt_tokens`, `completion_tokens`, `total_tokens`, `cost_usd`,
    `remaining_usd`, `request_id`, `max_tokens`, `clamped`). `clamped` is True when Wattfare lowered
    `max_tokens` because the user's cap is nearly used: say so rather than show a silently cut answer.
    A busy budget (`BudgetBusyError`, a `RateLimitError`: the user's other requests in flight hold the cap)
    is retried by the SDK (`max_retries`) and never reported as a spent cap.

    Args:
        model: The model id, as in Wattfare's model list (`openai/gpt-4o-mini`, `anthropic/claude-sonnet-4`).
        user_id: Your app's id for the end user who pays.
        grant: Instead of a user, a member's one-time grant token (`wfg_…`, sent as `Wattfare-Grant`): the grant's
            requests pay, and once it is spent a call raises `GrantInvalidError`; see `for_grant`.
        secret_key: Your app's secret key (alias `api_key`, as in LlamaIndex's `OpenAI`); `WATTFARE_SECRET_KEY`
            when None.
        base_url: The Wattfare server (alias `api_base`); `WATTFARE_BASE_URL`, then `http://127.0.0.1:8787`, when
            None.
        http_client: An `httpx.Client` for the SDK to send through (proxies, custom transports); you close it.
        async_http_client: The same for async calls; you close it.
        **kwargs: Any other field below (`temperature`, `max_tokens`, `context_window`, ...), or
            LlamaIndex's own (`callback_manager`, `system_prompt`, ...). `OpenAI`'s `logprobs`, `top_logprobs`
            and `reasoning_effort` are sent as request fields.

    Raises:
        UsageError: The secret key is missing or malformed; `user_id` is empty, or not exactly one of `user_id` and
            `grant` is given; or an argument is unknown, or one of `OpenAI`'s that means nothing here
            (`default_headers`, `api_version`, `reuse_client`, ...): the message says what to do instead. Unknown
            arguments are never sent: request fields go in `additional_kwargs`.

    Example:
        >>> llm = WattfareLLM(model="openai/gpt-4o-mini", user_id="user_42")  # doctest: +SKIP
        >>> agent = FunctionAgent(tools=[get_weather], llm=llm)  # doctest: +SKIP
        >>> llm.for_user("user_43")  # the same model and connection pool, charged to another user  # doctest: +SKIP
    """

    model: str = Field(description="The model id, as in Wattfare's model list.")
    user_id: str | None = Field(default=None, description="The app's id for the end user whose budget pays.")
    grant: str | None = Field(
        default=None, exclude=True, repr=False, description="A one-time grant's token, charged instead of a user."
    )
    base_url: str | None = Field(default=None, description="The Wattfare server (WATTFARE_BASE_URL when None).")
    temperature: float | None = Field(default=None, description="Sampling temperature; the model's default when None.")
    max_tokens: int | None = Field(
        default=None, gt=0, description="The longest answer, in tokens; Wattfare caps it to what the budget affords."
    )
    context_window: int | None = Field(
        default=None, gt=0, description="The model's context window; read from Wattfare's model list when None."
    )
    strict: bool = Field(default=False, description="Ask for tool arguments that match the tool's schema exactly.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="More Chat Completions parameters sent with every request (seed, top_p, ...)."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request (per read for a stream).")
    max_retries: int = Field(
        default=2,
        ge=0,
        description="The SDK's retries of connection errors, 429 (a busy budget included) and 5xx; a 402 never is.",
    )

    _connection: Connection = PrivateAttr()

    def __init__(
        self,
        model: str,
        user_id: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        grant: str | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        given = {"secret_key": secret_key, "base_url": base_url}
        arguments = resolve_arguments(
            {**{name: value for name, value in given.items() if value is not None}, **kwargs},
            accepted={*type(self).model_fields, "secret_key"},
        )
        secret_key = arguments.pop("secret_key", None)
        super().__init__(model=model, user_id=user_id, grant=grant, **arguments)
        self._connection = Connection(
            secret_key=secret_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self._connection.check_payer("WattfareLLM", user_id, grant)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "WattfareLLM"

    def for_user(self, user_id: str) -> WattfareLLM:
        """The same LLM charged to another user: a cheap copy sharing this one's connection pools and model list.

        Raises:
            UsageError: `user_id` is empty.
        """
        self._connection.check_payer("WattfareLLM", user_id, None)
        return self.model_copy(update={"user_id": user_id, "grant": None})

    def for_grant(self, grant: str) -> WattfareLLM:
        """The same LLM charged to a member's one-time grant (its token) instead of a user: a cheap copy, as `for_user`.

        Raises:
            UsageError: `grant` is not a non-empty printable ASCII str.
        """
        self._connection.check_payer("WattfareLLM", None, grant)
        return self.model_copy(update={"grant": grant, "user_id": None})

    def close(self) -> None:
        """Close the sync connection pool (shared with `for_user` copies)."""
        self._connection.close()

    async def aclose(self) -> None:
        """Close this event loop's async connection pool (shared with `for_user` copies)."""
        await self._connection.aclose()

    # ---------------------------------------------------------------- metadata

    @property
    def metadata(self) -> LLMMetadata:
        """The model's name, context window and longest answer (from Wattfare's model list, read once)."""
        return self._metadata(fetch=True)

    def to_payload(self) -> dict[str, Any]:
        """What LlamaIndex's events say about this LLM; never reads the network, never holds the key."""
        return {"class_name": self.class_name(), **self._metadata(fetch=False).model_dump()}

    def _metadata(self, *, fetch: bool) -> LLMMetadata:
        context_window, max_output = self.context_window, self.max_tokens
        if context_window is None or max_output is None:
            catalog = self._connection.catalog
            limits = catalog.lookup(self.model) if fetch else catalog.known(self.model)
            if limits is not None:
                context_window = context_window or limits.context_window
                max_output = max_output or limits.max_output
        return LLMMetadata(
            context_window=context_window or DEFAULT_CONTEXT_WINDOW,
            num_output=max_output or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    # ---------------------------------------------------------------- chat

    @_chat_event
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One chat completion, charged to `user_id`."""
        return self._chat(messages, **kwargs)

    @_chat_event
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """A streamed chat completion: each response holds the message so far and its `delta`."""
        return self._stream_chat(messages, **kwargs)

    @_chat_event
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """`chat`, async."""
        return await self._achat(messages, **kwargs)

    @_chat_event
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """`stream_chat`, async."""
        return await self._astream_chat(messages, **kwargs)

    # Completions are chats with one user message: Wattfare serves Chat Completions only.

    @_completion_event
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The answer to `prompt`, sent as one user message."""
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @_completion_event
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """The streamed answer to `prompt`, sent as one user message."""
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @_completion_event
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """`complete`, async."""
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @_completion_event
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """`stream_complete`, async."""
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        wire = to_wire_messages(messages)
        return chat_response(self._payer().chat(model=self.model, messages=wire, **self._params(kwargs)))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        wire = to_wire_messages(messages)
        return chat_response(await self._apayer().chat(model=self.model, messages=wire, **self._params(kwargs)))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # Built now, so that a malformed request fails at the call rather than at the first `next()`.
        stream = self._payer().stream(model=self.model, messages=to_wire_messages(messages), **self._params(kwargs))

        def responses() -> Generator[ChatResponse]:
            state = StreamState()
            with stream:
                for chunk in stream:
                    yield state.add(chunk, stream)
            if state.responses == 0:
                # LlamaIndex's agents refuse an empty stream; a message, even empty, is the honest answer.
                yield ChatResponse(message=state.message(), delta="")

        return responses()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        stream = self._apayer().stream(model=self.model, messages=to_wire_messages(messages), **self._params(kwargs))

        async def responses() -> AsyncGenerator[ChatResponse]:
            state = StreamState()
            async with stream:
                async for chunk in stream:
                    yield state.add(chunk, stream)
            if state.responses == 0:
                yield ChatResponse(message=state.message(), delta="")

        return responses()

    def _payer(self) -> WattfareUser | WattfareGrant:
        return self._connection.payer(self.user_id, self.grant)

    def _apayer(self) -> AsyncWattfareUser | AsyncWattfareGrant:
        return self._connection.async_payer(self.user_id, self.grant)

    def _params(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        check_request_fields(kwargs, "the call's arguments")
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        params.update(self.additional_kwargs)
        params.update(kwargs)
        # None means "not given" in LlamaIndex's calls (`tool_choice=None`, ...); on the wire it would mean null.
        return {key: value for key, value in params.items() if value is not None}

    # ---------------------------------------------------------------- tools

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The `chat` arguments for a turn that may call `tools`."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        specs = tool_specs(tools, strict=self.strict if strict is None else strict)
        if specs:
            prepared["tools"] = specs
            prepared["tool_choice"] = resolve_tool_choice(tool_choice, tool_required=tool_required)
            if not allow_parallel_tool_calls:
                prepared["parallel_tool_calls"] = False
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call when parallel calls were not allowed (a provider may ignore the flag)."""
        return response if allow_parallel_tool_calls else keep_first_tool_call(response)

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response, partial ones (mid-stream) included, with their arguments parsed.

        Raises:
            ValueError: The response calls no tool and `error_on_no_tool_call` is set.
        """
        return tool_selections(response, error_on_no_tool_call=error_on_no_tool_call)
