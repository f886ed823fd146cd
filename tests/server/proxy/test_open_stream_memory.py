"""An open stream keeps nothing of its prompt: thousands of them stay open for tens of seconds each.

The prompt is held parsed (str), encoded for the upstream and re-encoded with `max_tokens` (bytes); a
conversation can be tens of kB, so a stream that kept it would cost that much memory for its whole life.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support.standin_upstream import StandIn, run_standin
from tests.support.wattfare_server import Served, database_url_for, served

pytestmark = pytest.mark.anyio

# The marker is never spelled out in this test's own objects: the client sends it \u-escaped, and the search
# builds it from its reverse. So only the server's decoded and re-encoded copies of the prompt hold it plainly.
_MARKER_REVERSED = "c9a3f7-rekram-tpmorp"
_MARKER_ESCAPED = "".join(f"\\u{ord(c):04x}" for c in reversed(_MARKER_REVERSED))


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with run_standin(slow_delay=0.2) as running:
        yield running


def _holders_of_marker() -> list[str]:
    """The types of live objects holding a str or bytes that contains the marker.

    The collector lists only the objects it tracks, and it untracks a dict or tuple of atomic values (a
    parsed message `{"role": ..., "content": ...}`): so the search walks down from every tracked object.
    """
    needle_text = _MARKER_REVERSED[::-1]
    needle_bytes = needle_text.encode()
    found: list[str] = []
    seen: set[int] = set()
    pending = gc.get_objects()
    while pending:
        holder = pending.pop()
        for value in gc.get_referents(holder):
            kind = type(value)
            if (kind is str and needle_text in value) or (kind is bytes and needle_bytes in value):
                found.append(type(holder).__name__)
            elif kind in (dict, list, tuple) and not gc.is_tracked(value) and id(value) not in seen:
                seen.add(id(value))
                pending.append(value)
    return found


@asynccontextmanager
async def uvicorn_in_this_process(served: Served) -> AsyncIterator[str]:
    """The app behind a real uvicorn server in this event loop (httpx's ASGI transport buffers a whole
    response before the client sees any of it, so a stream would be over before it could be looked at)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(served.asgi, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not serving.done(), serving
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
    finally:
        server.should_exit = True
        await serving


async def test_an_open_stream_keeps_nothing_of_its_prompt(tmp_path: Path, standin: StandIn) -> None:
    async with served(
        database_url_for(tmp_path / "wattfare.db"),
        live_upstream="openai-compatible",
        test_upstream="openai-compatible",
        upstream_url=standin.base_url,
        upstream_key="test-key",
    ) as wattfare:
        assert await wattfare.services.prices["test"].refresh()  # the stand-in's models, priced
        body = {"model": "standin/slow", "stream": True, "messages": [{"role": "user", "content": "PROMPT"}]}
        # About 40 kB decoded: a long conversation's worth.
        escaped = json.dumps(body).replace("PROMPT", f"{_MARKER_ESCAPED} " * 2000)
        headers = {
            "Authorization": f"Bearer {wattfare.app.secret_keys['test']}",
            "Wattfare-User": "alice",
            "content-type": "application/json",
        }
        async with (
            uvicorn_in_this_process(wattfare) as api,
            httpx.AsyncClient(base_url=api) as client,
            client.stream("POST", "/chat/completions", content=escaped, headers=headers) as response,
        ):
            assert response.status_code == 200, await response.aread()
            events = response.aiter_lines()
            while not (await anext(events)).startswith("data: "):
                pass
            # Mid-stream (the stand-in's 50 tokens come 0.2 s apart): the upstream has the prompt, and the
            # relay has nothing more to do with it.
            gc.collect()
            assert _holders_of_marker() == []
        # Leaving the block hangs up: the stream is settled for what it relayed, as any hang-up is.
