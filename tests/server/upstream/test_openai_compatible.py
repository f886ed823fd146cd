from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.server.upstream.exchange import chat_request, read_all, sse_data
from tests.support.standin_upstream import StandIn
from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError
from wattfare.server.upstream.openai_compatible import OpenAICompatibleUpstream, UpstreamStreamBrokenError

pytestmark = pytest.mark.anyio


def chat(model: str = "standin/ok", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}


@pytest.fixture
async def upstream(standin: StandIn) -> AsyncIterator[OpenAICompatibleUpstream]:
    client = OpenAICompatibleUpstream(standin.base_url, "sk-default", timeout=5.0, connect_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_completion_comes_back_whole_with_its_generation_id(
    upstream: OpenAICompatibleUpstream, standin: StandIn
) -> None:
    response = await upstream.send(chat_request(chat()))

    assert response.status == 200
    assert response.chunks is None
    answer = ChatCompletion.model_validate_json(await read_all(response))
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 20
    assert response.headers["x-generation-id"].startswith("gen-standin-")
    assert response.headers["content-type"] == "application/json"


async def test_the_body_is_sent_byte_for_byte_with_the_default_key_and_attribution(
    upstream: OpenAICompatibleUpstream, standin: StandIn
) -> None:
    body = b'{ "messages": [{"content": "Hi", "role": "user"}],   "model": "standin/ok", "max_tokens": 7 }'
    request = UpstreamRequest(body=body, payload=orjson.loads(body), stream=False)
    await read_all(await upstream.send(request))

    seen = standin.stats()
    assert seen["last_raw"] == body.decode()
    assert seen["last_headers"]["authorization"] == "Bearer sk-default"
    assert seen["last_headers"]["x-title"] == "Wattfare"
    assert seen["last_headers"]["content-type"] == "application/json"


async def test_a_request_key_replaces_the_default_key(upstream: OpenAICompatibleUpstream, standin: StandIn) -> None:
    await read_all(await upstream.send(chat_request(chat(), api_key="sk-user")))

    assert standin.stats()["last_headers"]["authorization"] == "Bearer sk-user"


async def test_without_any_key_no_authorization_is_sent(standin: StandIn) -> None:
    keyless = OpenAICompatibleUpstream(standin.base_url, None, app_name=None)
    try:
        await read_all(await keyless.send(chat_request(chat())))
    finally:
        await keyless.aclose()

    headers = standin.stats()["last_headers"]
    assert "authorization" not in headers
    assert "x-title" not in headers


async def test_a_stream_is_relayed_as_the_upstream_sent_it(upstream: OpenAICompatibleUpstream) -> None:
    payload = chat(stream=True, stream_options={"include_usage": True}, max_tokens=4)
    response = await upstream.send(chat_request(payload))

    assert response.status == 200
    assert response.body is None
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(await read_all(response))
    assert data[-1] == b"[DONE]"
    parsed = [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in parsed if chunk.choices)
    assert text == "word0 word1 word2 word3"
    assert parsed[-1].usage is not None
    assert parsed[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
async def test_an_error_status_is_passed_through_with_its_body(
    upstream: OpenAICompatibleUpstream, stream: bool
) -> None:
    response = await upstream.send(chat_request(chat("standin/http-500", stream=stream)))

    assert response.status == 500
    assert response.chunks is None
    assert response.body is not None
    assert orjson.loads(response.body)["error"]["code"] == 500


async def test_a_rate_limit_keeps_its_retry_after(upstream: OpenAICompatibleUpstream) -> None:
    response = await upstream.send(chat_request(chat("standin/http-429", stream=True)))

    assert response.status == 429
    assert response.headers["retry-after"] == "7"


async def test_no_answer_in_time_is_an_unavailable_upstream_that_timed_out(standin: StandIn) -> None:
    impatient = OpenAICompatibleUpstream(standin.base_url, "k", timeout=0.3)
    try:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await impatient.send(chat_request(chat("standin/timeout")))
    finally:
        await impatient.aclose()

    assert caught.value.timed_out is True


async def test_a_refused_connection_is_an_unavailable_upstream(standin: StandIn) -> None:
    nowhere = OpenAICompatibleUpstream(f"http://127.0.0.1:{closed_port()}/v1", "k")
    try:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await nowhere.send(chat_request(chat()))
        with pytest.raises(UpstreamUnavailableError):
            await nowhere.list_models()
    finally:
        await nowhere.aclose()

    assert caught.value.timed_out is False


async def test_a_stream_cut_mid_answer_raises_stream_broken(upstream: OpenAICompatibleUpstream) -> None:
    response = await upstream.send(chat_request(chat("standin/hangup", stream=True)))
    assert response.status == 200
    assert response.chunks is not None

    received: list[bytes] = []

    async def read_until_broken() -> None:
        assert response.chunks is not None
        async for chunk in response.chunks:
            received.append(chunk)

    with pytest.raises(UpstreamStreamBrokenError) as caught:
        await read_until_broken()
    await response.close()

    assert isinstance(caught.value.__cause__, aiohttp.ClientError | OSError)
    assert b"word2" in b"".join(received)
    assert b"[DONE]" not in b"".join(received)


async def test_a_body_cut_mid_answer_is_an_unavailable_upstream(upstream: OpenAICompatibleUpstream) -> None:
    with pytest.raises(UpstreamUnavailableError) as caught:
        await upstream.send(chat_request(chat("standin/hangup")))

    assert caught.value.timed_out is False


async def test_closing_an_unread_stream_frees_its_connection(standin: StandIn) -> None:
    # One connection only: a stream closed without being read must give it back, or the next send waits for it
    # until the connect timeout. Held, an unread response keeps its connection however long ago the stand-in
    # finished, so a generous timeout still catches it; 0.5 s was missed by a mere slow connect on a loaded machine.
    pool = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=10.0, connect=5.0)
    )
    upstream = OpenAICompatibleUpstream(standin.base_url, "k", http_client=pool)
    try:
        for _ in range(3):
            response = await upstream.send(chat_request(chat("standin/slow", stream=True)))
            assert response.status == 200
            await response.close()
        await upstream.aclose()
        assert not pool.closed, "a client passed in belongs to the caller"
    finally:
        await pool.close()


async def test_the_built_in_pool_holds_as_many_open_streams_as_there_are_requests(
    upstream: OpenAICompatibleUpstream,
) -> None:
    # 600 streams open at once, each past its headers: a pool capped below that (it was 512) would make the rest wait
    # for a free connection until the connect timeout (2 s here) answered them as unavailable.
    opened = await asyncio.gather(
        *(upstream.send(chat_request(chat("standin/slow", stream=True))) for _ in range(600)), return_exceptions=True
    )
    try:
        assert [type(answer).__name__ for answer in opened if not isinstance(answer, UpstreamResponse)] == []
        assert {answer.status for answer in opened if isinstance(answer, UpstreamResponse)} == {200}
    finally:
        await asyncio.gather(*(answer.close() for answer in opened if isinstance(answer, UpstreamResponse)))


async def test_models_are_listed_from_the_upstream(upstream: OpenAICompatibleUpstream) -> None:
    models = {model["id"]: model for model in await upstream.list_models()}

    assert models["standin/ok"]["pricing"] == {"prompt": "0.000001", "completion": "0.000002"}
    assert "overrides" in models["standin/long-context"]["pricing"]
    assert "standin/runaway" in models


async def test_a_failed_model_listing_is_an_unavailable_upstream(standin: StandIn) -> None:
    wrong = OpenAICompatibleUpstream(standin.base_url + "/nothing-here", "k")
    try:
        with pytest.raises(UpstreamUnavailableError):
            await wrong.list_models()
    finally:
        await wrong.aclose()


# -- embeddings: the same key handling, timeouts and failure mapping as a whole chat answer


async def test_an_embedding_request_is_posted_to_embeddings_with_the_funding_key(
    upstream: OpenAICompatibleUpstream, standin: StandIn
) -> None:
    payload = {"model": "standin/embed", "input": ["a", "b"], "dimensions": 3, "encoding_format": "float"}
    # Even a request marked as a stream is answered whole: embeddings never stream.
    request = UpstreamRequest(body=orjson.dumps(payload), payload=payload, stream=True, api_key="sk-member")

    response = await upstream.embed(request)

    assert response.status == 200
    assert response.chunks is None
    body = orjson.loads(await read_all(response))
    assert [len(item["embedding"]) for item in body["data"]] == [3, 3]
    seen = standin.stats()
    assert seen["last_request"] == payload
    assert seen["last_headers"]["authorization"] == "Bearer sk-member"
    assert seen["last_headers"]["content-type"] == "application/json"


async def test_an_embedding_refusal_comes_back_as_its_status_and_body(upstream: OpenAICompatibleUpstream) -> None:
    payload = {"model": "standin/embed-http-429", "input": "x"}

    response = await upstream.embed(chat_request(payload))

    assert response.status == 429
    assert response.headers["retry-after"] == "7"
    assert orjson.loads(await read_all(response))["error"]["code"] == 429


async def test_an_embedding_that_does_not_come_in_time_is_an_unavailable_upstream(standin: StandIn) -> None:
    impatient = OpenAICompatibleUpstream(standin.base_url, "k", timeout=0.3)
    try:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await impatient.embed(chat_request({"model": "standin/embed-timeout", "input": "x"}))
        assert caught.value.timed_out
    finally:
        await impatient.aclose()


async def test_embedding_models_are_listed_apart_as_openrouter_lists_them(upstream: OpenAICompatibleUpstream) -> None:
    models = {model["id"]: model for model in await upstream.list_embedding_models()}

    assert models["standin/embed"]["pricing"] == {"prompt": "0.000001"}
    assert models["standin/embed"]["architecture"]["output_modalities"] == ["embeddings"]
    assert "standin/ok" not in models


async def test_a_provider_without_an_embedding_list_lists_none_and_other_failures_raise(standin: StandIn) -> None:
    absent = OpenAICompatibleUpstream(standin.base_url + "/nothing-here", "k")
    nowhere = OpenAICompatibleUpstream(f"http://127.0.0.1:{closed_port()}/v1", "k", connect_timeout=1.0)
    try:
        assert await absent.list_embedding_models() == []  # a 404: the provider has no such list
        with pytest.raises(UpstreamUnavailableError):
            await nowhere.list_embedding_models()
    finally:
        await absent.aclose()
        await nowhere.aclose()
