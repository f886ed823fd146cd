"""`wattfare/` calls charged to a one-time grant (`wattfare_grant=`), through LiteLLM, without a server.

The handler's SDK client is given an `httpx.MockTransport` that plays a tiny Wattfare; LiteLLM is real.
"""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import litellm
import pytest
from litellm.integrations.custom_guardrail import is_guardrail_intervention
from litellm.integrations.custom_logger import CustomLogger

import wattfare
import wattfare_litellm
from wattfare_litellm import WattfareGrantInvalidError, WattfareLLM, WattfarePaymentRequiredError
from wattfare_litellm._call import read_call, read_embedding_call
from wattfare_litellm._error_mapping import PER_USER_REFUSALS, litellm_error

KEY = "sk_test_offline"
BASE_URL = "http://wattfare.test"
MODEL = "openai/gpt-4o-mini"
GRANT = "wfg_" + "g" * 43
HI = [{"role": "user", "content": "hi"}]

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def chunk(content: str) -> dict[str, Any]:
    delta = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [delta]}


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


def grant_invalid() -> httpx.Response:
    error = {"code": "grant_invalid", "message": "This grant is used up.", "type": "insufficient_quota", "param": None}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


class FakeWattfare:
    """Answers chat completions and embeddings (or replays scripted responses), recording each request."""

    def __init__(self) -> None:
        self.scripted: list[httpx.Response] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.scripted:
            return self.scripted.pop(0)
        body = json.loads(request.content)
        if request.url.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
            return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})
        if body.get("stream"):
            usage = {**chunk(""), "choices": [], "usage": COMPLETION["usage"]}
            content = sse(chunk("Hel"), chunk("lo"), usage) + b"data: [DONE]\n\n"
            return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=COMPLETION)

    @property
    def payers(self) -> list[tuple[str | None, str | None]]:
        """Each request's (Wattfare-User, Wattfare-Grant)."""
        return [(r.headers.get("wattfare-user"), r.headers.get("wattfare-grant")) for r in self.requests]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWattfare]:
    """A registered handler over the fake (sync and async); the provider map is restored afterwards."""
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    served = FakeWattfare()
    with httpx.Client(transport=httpx.MockTransport(served)) as http:
        async_http = httpx.AsyncClient(transport=httpx.MockTransport(served))
        wattfare_litellm.register(WattfareLLM(http_client=http, async_http_client=async_http, max_retries=3))
        yield served


def call(**kwargs: Any) -> dict[str, Any]:
    return {"model": f"wattfare/{MODEL}", "messages": HI, "api_key": KEY, "api_base": BASE_URL, **kwargs}


# ---------------------------------------------------------------- through LiteLLM


def test_a_completion_with_wattfare_grant_names_the_grant_and_no_user(fake: FakeWattfare) -> None:
    reply: Any = litellm.completion(**call(wattfare_grant=GRANT))

    assert reply.choices[0].message.content == "Hi!"
    assert fake.payers == [(None, GRANT)]
    assert "wattfare_grant" not in json.loads(fake.requests[0].content)


@pytest.mark.anyio
async def test_an_async_stream_with_wattfare_grant_names_the_grant_and_no_user(fake: FakeWattfare) -> None:
    stream: Any = await litellm.acompletion(**call(wattfare_grant=GRANT, stream=True))
    texts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]

    assert "".join(texts) == "Hello"
    assert fake.payers == [(None, GRANT)]


def test_the_wattfare_grant_header_names_a_grant_too(fake: FakeWattfare) -> None:
    litellm.completion(**call(extra_headers={"Wattfare-Grant": GRANT}))

    assert fake.payers == [(None, GRANT)]


def test_an_embedding_with_wattfare_grant_names_the_grant_and_no_user(fake: FakeWattfare) -> None:
    result: Any = litellm.embedding(
        model="wattfare/openai/text-embedding-3-small",
        input=["a"],
        wattfare_grant=GRANT,
        api_key=KEY,
        api_base=BASE_URL,
    )

    assert result.data[0]["embedding"] == [0.5, 0.25]
    assert fake.payers == [(None, GRANT)]


def test_a_call_naming_both_a_user_and_a_grant_is_a_bad_request_and_sends_nothing(fake: FakeWattfare) -> None:
    with pytest.raises(litellm.BadRequestError, match="not both"):
        litellm.completion(**call(user="u1", wattfare_grant=GRANT))
    with pytest.raises(litellm.BadRequestError, match="not both"):
        litellm.embedding(
            model="wattfare/e", input=["a"], user="u1", wattfare_grant=GRANT, api_key=KEY, api_base=BASE_URL
        )

    assert fake.requests == []


def test_a_call_naming_neither_says_how_to_name_a_grant(fake: FakeWattfare) -> None:
    with pytest.raises(litellm.BadRequestError, match="wattfare_grant="):
        litellm.completion(**call())
    assert fake.requests == []


def test_a_spent_grant_raises_grant_invalid_once_as_a_refusal_the_router_never_falls_back_from(
    fake: FakeWattfare,
) -> None:
    fake.scripted = [grant_invalid(), grant_invalid()]

    with pytest.raises(WattfareGrantInvalidError) as info:
        litellm.completion(**call(wattfare_grant=GRANT))

    assert isinstance(info.value, WattfarePaymentRequiredError)
    assert is_guardrail_intervention(info.value)
    assert (info.value.code, info.value.wattfare_status_code, info.value.app_user_id) == ("grant_invalid", 402, None)
    assert len(fake.requests) == 1


def test_a_grant_cut_off_mid_stream_raises_grant_invalid(fake: FakeWattfare) -> None:
    cut = {"error": {"code": "grant_invalid", "message": "Revoked.", "type": "insufficient_quota", "param": None}}
    fake.scripted = [httpx.Response(200, content=sse(chunk("Hel"), cut), headers={"content-type": "text/event-stream"})]
    texts: list[str] = []

    stream: Any = litellm.completion(**call(wattfare_grant=GRANT, stream=True))
    with pytest.raises(WattfareGrantInvalidError):  # noqa: PT012  (the text before the error arrives first)
        for piece in stream:
            texts.append(piece.choices[0].delta.content or "")

    assert "".join(texts) == "Hel"


# ---------------------------------------------------------------- reading a call, mapping an error


class NoLogging:
    model_call_details: dict[str, Any] = {}  # noqa: RUF012  (read only)


def test_a_read_call_keeps_the_grant_out_of_the_body_and_its_repr() -> None:
    chat = read_call(
        model=MODEL,
        messages=HI,
        optional_params={"wattfare_grant": GRANT, "temperature": 0},
        logging_obj=NoLogging(),
        headers=None,
        api_key=KEY,
        api_base=BASE_URL,
        timeout=None,
        stream=False,
    )
    embedding = read_embedding_call(
        model="e",
        input=["a"],
        optional_params={"wattfare_grant": GRANT},
        logging_obj=NoLogging(),
        api_key=KEY,
        api_base=BASE_URL,
        timeout=None,
    )

    assert (chat.app_user_id, chat.grant, chat.params) == (None, GRANT, {"temperature": 0})
    assert (embedding.app_user_id, embedding.grant) == (None, GRANT)
    assert GRANT not in repr(chat) + repr(embedding)


def test_grant_invalid_is_a_per_user_refusal_mapped_to_its_own_class() -> None:
    error = wattfare.GrantInvalidError(
        "used up", status_code=402, code="grant_invalid", body={"error": {"code": "grant_invalid"}}, request_id="r1"
    )

    mapped: Any = litellm_error(error, model="m", app_user_id=None)

    assert "grant_invalid" in PER_USER_REFUSALS
    assert type(mapped) is WattfareGrantInvalidError
    assert (mapped.status_code, mapped.request_id, mapped.app_user_id) == (400, "r1", None)


class CallbackSpy(CustomLogger):
    """A LiteLLM callback, as an observability vendor's or the proxy's spend log: what each call showed it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(repr(kwargs))

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(repr(kwargs))

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(repr(kwargs))

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(repr(kwargs))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> CallbackSpy:
    watcher = CallbackSpy()
    monkeypatch.setattr(litellm, "callbacks", [watcher])
    return watcher


def _until(seen: list[str], count: int) -> None:
    """LiteLLM runs callbacks on threads and tasks of its own: wait (a few seconds at most) until `count` came."""
    deadline = time.monotonic() + 5
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.anyio
async def test_callbacks_see_the_grant_masked_never_in_clear(fake: FakeWattfare, spy: CallbackSpy) -> None:
    litellm.completion(**call(wattfare_grant=GRANT))
    stream: Any = await litellm.acompletion(**call(wattfare_grant=GRANT, stream=True))
    _ = [c async for c in stream]
    litellm.embedding(
        model="wattfare/openai/text-embedding-3-small",
        input=["a"],
        wattfare_grant=GRANT,
        api_key=KEY,
        api_base=BASE_URL,
    )
    fake.scripted.append(grant_invalid())
    with pytest.raises(WattfareGrantInvalidError):
        litellm.completion(**call(wattfare_grant=GRANT))
    await asyncio.to_thread(_until, spy.seen, 4)

    assert fake.payers == [(None, GRANT)] * 4  # the grant itself still pays
    assert len(spy.seen) >= 4
    assert not [shown for shown in spy.seen if GRANT in shown]
    assert all(f"wfg_…{GRANT[-4:]}" in shown for shown in spy.seen)
